"""The demo's outputs from what the node published, decoded (`petr_ros.ros.messages`): the pictures (demo.png,
demo.gif) and the summary (summary.json / summary.txt). Pure (no ROS): frames carry decoded PersonResults and
marker primitives."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petr_ros.fileio import write_text
from petr_ros.render import MarkerPrimitive, PanelRenderer, contact_sheet, save_gif, save_png, scene_limits
from petr_ros.results import PersonResult

LOG = logging.getLogger("petr_demo")


@dataclass
class DemoFrame:
    """One video frame sent to the node and what came back for it."""

    index: int  # frame number in the video
    stamp_ns: int  # the image's header stamp (the video's own time of the frame)
    rgb: np.ndarray
    published_s: float = 0.0  # time.monotonic() at publish
    answered_s: float | None = None  # time.monotonic() when its SkeletonArray came back
    messages: dict[str, Any] = field(default_factory=dict)  # output key -> the received message
    persons: list[PersonResult] | None = None  # decoded SkeletonArray (None: no answer)
    primitives: list[MarkerPrimitive] = field(default_factory=list)  # decoded MarkerArray + PoseArray axes


def render_outputs(frames: list[DemoFrame], out: Path, fps: float, sheet_frames: int = 6,
                   gif_frames: int = 30) -> dict[str, str]:
    """demo.png (a contact sheet of `sheet_frames` frames with people) and demo.gif (`gif_frames` frames, about
    real time) from the answered frames; returns their paths."""
    answered = [f for f in frames if f.persons is not None]
    if not answered:
        raise RuntimeError("the node answered no frame: nothing to draw (see node.log)")
    positions = [p.joints3d_camera for f in answered for p in f.persons]
    limits = None
    if positions:
        # One view for the whole clip (no jumping axes), robust to a stray skeleton.
        pts = np.concatenate(positions)
        limits = scene_limits(np.stack([np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)]))
    renderer = PanelRenderer()
    t0_ns = frames[0].stamp_ns - round(frames[0].index * 1e9 / fps)

    def panel(frame: DemoFrame) -> np.ndarray:
        people = frame.persons or []
        title = (f"frame {frame.index} (t = {(frame.stamp_ns - t0_ns) / 1e9:.2f} s): {len(people)} "
                 f"{'person' if len(people) == 1 else 'people'}   |   3D: camera frame, joint axes x/y/z = r/g/b")
        return renderer.render(frame.rgb, people, title=title, primitives=frame.primitives, limits=limits)

    def spread(items: list[DemoFrame], n: int) -> list[DemoFrame]:
        pick = np.linspace(0, len(items) - 1, min(n, len(items))).round().astype(int)
        return [items[i] for i in sorted(set(pick.tolist()))]

    with_people = [f for f in answered if f.persons] or answered
    sheet = contact_sheet([panel(f) for f in spread(with_people, sheet_frames)], columns=2)
    png = save_png(out / "demo.png", sheet)
    LOG.info("wrote %s (%dx%d)", png, sheet.shape[1], sheet.shape[0])
    gif_panels = [panel(f) for f in spread(answered, gif_frames)]
    span = (answered[-1].index - answered[0].index) / fps
    gif = save_gif(out / "demo.gif", gif_panels, fps=max(2.0, min(15.0, len(gif_panels) / max(span, 1e-3))),
                   scale=0.75)
    LOG.info("wrote %s (%d frames)", gif, len(gif_panels))
    return {"png": str(png), "gif": str(gif)}


def summarise(frames: list[DemoFrame], run: dict[str, Any], fps: float, size: tuple[int, int],
              pictures: dict[str, str], total_s: float, video: str, focal_px: float | None) -> dict[str, Any]:
    """The summary of a run: frames, people, ids, rates, latency, the node's diagnostics, the outputs."""
    answered = [f for f in frames if f.persons is not None and f.answered_s is not None]
    latencies = np.array([f.answered_s - f.published_s for f in answered]) * 1000.0
    people = [len(f.persons) for f in answered]
    stream_s = max(run["stream_s"], 1e-6)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(latencies, q)), 1) if len(latencies) else None

    return {
        "video": video,
        "video_size": list(size),
        "video_fps": round(fps, 3),
        "published_size": [int(frames[0].rgb.shape[1]), int(frames[0].rgb.shape[0])],
        "frames_published": len(frames),
        "frames_answered": len(answered),
        "video_frames_spanned": [frames[0].index, frames[-1].index],
        "people_per_frame": {"max": max(people, default=0), "mean": round(float(np.mean(people)), 3) if people else 0,
                             "frames_with_people": int(sum(p > 0 for p in people))},
        "person_ids": sorted({p.person_id for f in answered for p in f.persons}),
        "input_rate_hz": round(len(frames) / stream_s, 3),
        "processed_rate_hz": round(len(answered) / stream_s, 3),
        "latency_ms": {"p50": pct(50), "p95": pct(95),
                       "max": round(float(latencies.max()), 1) if len(latencies) else None,
                       "what": "image published -> SkeletonArray received (decode, 2D, lift, publish, DDS both ways)"},
        "node_startup_s": round(run["node_startup_s"], 2),
        "stream_s": round(stream_s, 2),
        "total_s": round(total_s, 2),
        "backend": run["node_diagnostics"].get("backend", ""),
        "device": run["node_diagnostics"].get("device", ""),
        "node_model_line": run["node_model_line"],
        "node_diagnostics": run["node_diagnostics"],
        "camera_info": (f"fx = fy = {focal_px:.2f} px at {size[0]}x{size[1]}, centred" if focal_px
                        else "none (node default: 60 degree field of view, pelvis at default_depth)"),
        "placement": sorted({"intrinsics" if p.metric else "default_depth" for f in answered for p in f.persons}),
        "ros_domain_id": run["domain_id"],
        "bag": run["bag"],
        "bag_messages": run["bag_counts"],
        "pictures": pictures,
        "node_log": run["node_log"],
    }


def summary_text(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    ppf = s["people_per_frame"]
    d = s["node_diagnostics"]
    lines = [
        "petr_ros demo: a real video through petr_node over DDS",
        f"video        {s['video']} ({s['video_size'][0]}x{s['video_size'][1]} @ {s['video_fps']:g} fps), "
        f"frames {s['video_frames_spanned'][0]}..{s['video_frames_spanned'][1]}",
        f"published    {s['frames_published']} frames at {s['published_size'][0]}x{s['published_size'][1]} rgb8, "
        f"one at a time at the node's pace",
        f"answered     {s['frames_answered']} frames; people per frame max {ppf['max']}, mean {ppf['mean']}, "
        f"{ppf['frames_with_people']} frames with people; ids {s['person_ids']}",
        f"rates        input {s['input_rate_hz']:.2f} Hz, processed {s['processed_rate_hz']:.2f} Hz",
        f"latency      p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms ({lat['what']})",
        f"node         {s['node_model_line'] or s['backend']} (ready after {s['node_startup_s']} s)",
        f"camera       {s['camera_info']}; skeletons placed by {', '.join(s['placement']) or '-'}",
        f"node counts  received {d.get('received', '?')}, processed {d.get('processed', '?')}, dropped stale "
        f"{d.get('dropped_stale', '?')}, invalid {d.get('dropped_invalid', '?')}, errors {d.get('errors', '?')}; "
        f"inference p50 {d.get('inference_p50_ms', '?')} ms",
        f"outputs      {s['pictures'].get('png')}, {s['pictures'].get('gif')}, bag {s['bag']} "
        f"({sum(s['bag_messages'].values())} messages)",
        f"total        {s['total_s']} s",
    ]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict[str, Any]) -> str:
    """summary.json and summary.txt in `out` (atomically); returns the text."""
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    text = summary_text(summary)
    write_text(out / "summary.txt", text)
    return text
