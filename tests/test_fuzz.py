"""A bounded fuzzing run in CI: structure-aware mutations of valid files (CRCs recomputed, so they reach
the range coder and the prior) end in an image or a documented error, never anything else. The long
run is eval/fuzz.py (eval/results/fuzz.md)."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vqcodec.fuzz import decode_once, fuzz_model, mutate, seed_files

VECTORS = Path(__file__).parent.parent / "bitstreams" / "vectors"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    model = fuzz_model(tmp_path_factory.mktemp("fuzz-model"))
    return model, seed_files(model)


@settings(max_examples=4000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 63 - 1), pick=st.integers(0, 10 ** 6))
def test_mutated_files_of_a_small_model_end_in_documented_outcomes(small_model, seed, pick):
    model, seeds = small_model
    data = mutate(seeds[pick % len(seeds)], np.random.default_rng(seed), model.downsample)
    outcome = decode_once(data, model)
    assert outcome.documented, (outcome.kind, data.hex())


@pytest.fixture(scope="module")
def small_hierarchy(tmp_path_factory):
    model = fuzz_model(tmp_path_factory.mktemp("fuzz-hierarchy"), hierarchy=True)
    return model, seed_files(model)


@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 63 - 1), pick=st.integers(0, 10 ** 6))
def test_mutated_files_of_a_small_hierarchy_end_in_documented_outcomes(small_hierarchy, seed, pick):
    model, seeds = small_hierarchy
    data = mutate(seeds[pick % len(seeds)], np.random.default_rng(seed), model.downsample)
    outcome = decode_once(data, model)
    assert outcome.documented, (outcome.kind, data.hex())


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 63 - 1), vector=st.sampled_from(sorted(VECTORS.glob("*.vqc"))))
def test_mutated_reference_files_end_in_documented_outcomes(model, seed, vector):
    data = mutate(vector.read_bytes(), np.random.default_rng(seed), model.downsample)
    outcome = decode_once(data, model, max_pixels=1 << 15)
    assert outcome.documented, (outcome.kind, data.hex())
