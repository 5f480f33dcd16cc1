"""External service tasks: input parameters become job params, results come back as data."""

from __future__ import annotations

import pytest

from runner.errors import StepFailed
from tests.harness import Harness

DATA = {"customer": "ACME", "count": 1, "region": "south"}


def start(mode: str) -> Harness:
    return Harness("service_tasks.bpmn", "service_tasks", mode).start(DATA)


def test_input_parameters_become_job_params(mode):
    h = start(mode)
    [job] = h.snapshot().jobs
    assert (job.element_id, job.topic, job.properties) == ("lookup", "crm.lookup", {"retries": "2"})
    assert job.params == {
        "source": "crm",  # literal
        "customer": "ACME",  # ${customer}
        "next_count": 2,  # ${count + 1}
        "tags": ["vip", "south"],  # camunda:list
        "contact": {"name": "ACME", "channel": "zalo"},  # camunda:map
    }


def test_results_are_merged_or_mapped(mode):
    h = start(mode)
    h.run_jobs({"crm.lookup": lambda p: {"found": True, "name": p["contact"]["name"]}})
    # Output parameters: only the mapped names reach the data, computed over the result.
    h.run_jobs({"crm.score": lambda p: {"points": 70, "ignored": 1}})
    # A non-dict result is reachable as ${result} from an output parameter.
    h.run_jobs({"crm.count": lambda p: 42})
    assert [j.element_id for j in h.snapshot().jobs] == ["raw"]
    assert h.data == {
        **DATA,
        "found": True,
        "name": "ACME",
        "lead_score": 70,
        "lead_grade": "A",
        "scored_by": "engine",
        "total": 42,
    }
    h.run_jobs({"crm.raw": lambda p: None})  # nothing to merge
    assert h.completed
    assert h.history == ["StartEvent_1", "lookup", "score", "count_it", "raw", "EndEvent_1"]


def test_non_dict_result_without_mapping_fails_naming_the_element(mode):
    h = start(mode)
    h.run_jobs({"crm.lookup": lambda p: {}, "crm.score": lambda p: {"points": 1}, "crm.count": lambda p: 0})
    with pytest.raises(StepFailed) as caught:
        h.run_jobs({"crm.raw": lambda p: [1, 2]})
    assert (caught.value.element_id, caught.value.element_name) == ("raw", "Không ánh xạ")
    assert "list" in str(caught.value)
    # The job is still open: a later (retried) result completes it.
    assert [j.element_id for j in h.snapshot().jobs] == ["raw"]
    h.run_jobs({"crm.raw": lambda p: {"ok": True}})
    assert h.completed and h.data["ok"] is True
