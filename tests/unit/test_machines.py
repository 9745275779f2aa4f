"""The job and run transitions tables equal the lists written here from the state descriptions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealed import PROPERTY

from orchd.core.machines import JOB, RUN, Machine, diagram
from orchd.errors import InvalidTransition

# Written from the state descriptions, not from orchd/core/machines.py.
JOB_STATES = (
    "queued",
    "waiting",
    "throttled",
    "running",
    "retry_wait",
    "succeeded",
    "dead",
    "cancelled",
)
JOB_BORN = {"queued", "waiting"}
JOB_TERMINAL = {"succeeded", "dead", "cancelled"}
JOB_ALLOWED = {
    ("queued", "waiting"),
    ("queued", "throttled"),
    ("queued", "running"),
    ("queued", "cancelled"),
    ("waiting", "queued"),
    ("waiting", "cancelled"),
    ("throttled", "throttled"),
    ("throttled", "queued"),
    ("throttled", "running"),
    ("throttled", "cancelled"),
    ("running", "succeeded"),
    ("running", "retry_wait"),
    ("running", "dead"),
    ("running", "cancelled"),
    ("retry_wait", "queued"),
    ("retry_wait", "running"),
    ("retry_wait", "cancelled"),
}

RUN_STATES = ("leased", "running", "succeeded", "failed", "timed_out", "interrupted")
RUN_BORN = {"leased"}
RUN_TERMINAL = {"succeeded", "failed", "timed_out", "interrupted"}
RUN_ALLOWED = {
    ("leased", "running"),
    ("leased", "failed"),
    ("leased", "interrupted"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "timed_out"),
    ("running", "interrupted"),
}

SPECS = [
    pytest.param(JOB, JOB_STATES, JOB_BORN, JOB_TERMINAL, JOB_ALLOWED, id="job"),
    pytest.param(RUN, RUN_STATES, RUN_BORN, RUN_TERMINAL, RUN_ALLOWED, id="run"),
]
UNKNOWN = "no_such_state"


def table_pairs(machine: Machine) -> set[tuple[str, str]]:
    return {(src, dst) for src, targets in machine.transitions.items() for dst in targets}


@pytest.mark.parametrize(("machine", "states", "born", "terminal", "allowed"), SPECS)
def test_table_has_exactly_the_listed_states_and_transitions(
    machine, states, born, terminal, allowed
):
    assert machine.states == set(states)
    assert table_pairs(machine) == allowed
    assert machine.initial == born
    assert machine.terminal == terminal


@pytest.mark.parametrize(("machine", "states", "born", "terminal", "allowed"), SPECS)
def test_allows_answers_the_list_for_every_pair_of_states(machine, states, born, terminal, allowed):
    everything = (*states, UNKNOWN)
    wrong = [
        (src, dst)
        for src, dst in itertools.product(everything, everything)
        if machine.allows(src, dst) != ((src, dst) in allowed)
    ]
    assert wrong == []


@pytest.mark.parametrize(("machine", "states", "born", "terminal", "allowed"), SPECS)
def test_terminal_states_absorb(machine, states, born, terminal, allowed):
    for src, dst in itertools.product(terminal, (*states, UNKNOWN)):
        with pytest.raises(InvalidTransition):
            machine.advance("subject-1", src, dst)


@pytest.mark.parametrize(("machine", "states", "born", "terminal", "allowed"), SPECS)
def test_begin_accepts_only_the_birth_states(machine, states, born, terminal, allowed):
    for state in (*states, UNKNOWN):
        if state in born:
            assert machine.begin("subject-1", state) == state
        else:
            with pytest.raises(InvalidTransition) as caught:
                machine.begin("subject-1", state)
            assert caught.value.fields["from_state"] == "(new)"
            assert caught.value.fields["to_state"] == state


def test_an_illegal_transition_names_machine_subject_and_states():
    with pytest.raises(InvalidTransition) as caught:
        JOB.advance("job-7", "succeeded", "queued")
    assert caught.value.fields == {
        "machine": "job",
        "subject": "job-7",
        "from_state": "succeeded",
        "to_state": "queued",
    }
    assert caught.value.message == "job job-7 cannot go from succeeded to queued"


def attempts_follow_the_list(data, machine, states, born, terminal, allowed):
    state = data.draw(st.sampled_from(sorted(born)), label="born")
    targets = st.sampled_from((*states, UNKNOWN))
    for _ in range(data.draw(st.integers(min_value=0, max_value=40), label="length")):
        target = data.draw(targets, label=f"attempt from {state}")
        before = state
        try:
            state = machine.advance("subject-1", before, target)
            accepted = True
        except InvalidTransition as exc:
            accepted = False
            assert (exc.fields["from_state"], exc.fields["to_state"]) == (before, target)
        assert accepted == ((before, target) in allowed)
        assert state == (target if accepted else before)
        if before in terminal:
            assert not accepted
    assert table_pairs(machine) == allowed  # attempts never change the table itself


@PROPERTY
@given(data=st.data())
def test_random_job_attempts_are_accepted_exactly_when_listed(data):
    attempts_follow_the_list(data, JOB, JOB_STATES, JOB_BORN, JOB_TERMINAL, JOB_ALLOWED)


@PROPERTY
@given(data=st.data())
def test_random_run_attempts_are_accepted_exactly_when_listed(data):
    attempts_follow_the_list(data, RUN, RUN_STATES, RUN_BORN, RUN_TERMINAL, RUN_ALLOWED)


def test_the_architecture_pages_diagrams_are_the_tables() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    section = page.split("## State machines", 1)[1]
    shown = section.split("```\n", 2)[1].rstrip("\n")

    assert shown == f"{diagram(JOB, 'job')}\n\n{diagram(RUN, 'run')}"  # tools/gen_docs.py writes it
