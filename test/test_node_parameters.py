"""petr_node's parameters take their defaults and choice lists from the core (one copy of each), and map onto
PipelineSettings; checked without DDS (the node module, no running node)."""

from __future__ import annotations

import dataclasses

import pytest

from petr_ros.estimator import BACKENDS
from petr_ros.model.device import PRECISIONS
from petr_ros.model.runtime import RUNTIMES
from petr_ros.pipeline import PipelineSettings
from petr_ros.ros.node import PARAM_BY_NAME, PARAMS, check_parameter, settings_from_parameters


def test_defaults_and_choices_are_the_cores() -> None:
    core = PipelineSettings()
    shared = [f.name for f in dataclasses.fields(PipelineSettings) if f.name in PARAM_BY_NAME]
    assert len(shared) >= 12  # model fields, tracking, smoothing, placement, max_persons
    for name in shared:
        value = getattr(core, name)
        assert PARAM_BY_NAME[name].default == ("" if value is None else value), name  # None (no file): ""
    assert PARAM_BY_NAME["min_person_score"].default == core.plausibility.min_score
    assert PARAM_BY_NAME["backend"].choices == BACKENDS
    assert PARAM_BY_NAME["precision"].choices == PRECISIONS
    assert PARAM_BY_NAME["hrnet_runtime"].choices == RUNTIMES
    assert "hrnet_runtime must be one of" in check_parameter("hrnet_runtime", "tensorrt")
    assert check_parameter("precision", "bf16") is None  # the core supports it, so the node takes it
    assert "precision must be one of" in check_parameter("precision", "int8")
    assert check_parameter("device", "cuda:3") is None
    assert check_parameter("device", "gpu") == "device must be auto, cpu, cuda or cuda:N, got 'gpu'"


def test_parameter_values_become_pipeline_settings() -> None:
    values = {p.name: p.default for p in PARAMS}
    assert settings_from_parameters(values) == PipelineSettings()  # the defaults map onto the defaults
    values.update({"lifter_checkpoint": "/models/lifter.pt", "min_person_score": 0.6, "max_persons": 3,
                   "tracking": False, "smoothing_beta": 0.5, "default_depth": 4.5, "precision": "bf16",
                   "hrnet_runtime": "onnxruntime"})
    s = settings_from_parameters(values)
    assert s.lifter_checkpoint == "/models/lifter.pt" and s.hrnet_weights is None
    assert s.plausibility.min_score == 0.6 and s.max_persons == 3 and not s.tracking
    assert s.smoothing_beta == 0.5 and s.default_depth == 4.5 and s.precision == "bf16"
    assert s.hrnet_runtime == "onnxruntime"
    # The ghost filter's other thresholds stay the core's.
    assert dataclasses.replace(s.plausibility, min_score=0.3) == PipelineSettings().plausibility
    with pytest.raises(ValueError, match="max_persons"):
        settings_from_parameters(dict(values, max_persons=0))
