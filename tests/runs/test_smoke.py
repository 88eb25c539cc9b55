import pytest

from runs import services
from runs.models import Run, Transition
from runs.states import RunState


@pytest.mark.django_db
def test_a_run_goes_from_submission_to_completion():
    run = services.submit(name="etl")
    (leased,) = services.lease(executor="e1")
    assert leased.pk == run.pk
    services.start(run.pk, executor="e1")
    services.heartbeat(run.pk, executor="e1", progress=50)
    done = services.complete(run.pk, executor="e1", result={"rows": 3})
    assert done.state == RunState.COMPLETED
    assert Run.objects.get(pk=run.pk).result == {"rows": 3}
    assert list(Transition.objects.filter(run=run).values_list("to_state", flat=True)) == [
        "ready", "leased", "running", "completed"]
