"""The flusher sends what was used since its last round and visits nothing else."""

from apps.breakers.agent import Agent
from tests.breakers.helpers import succeed
from tests.procs import wait_until


def test_flush__one_used_of_many__only_it_is_taken_and_its_calls_reach_the_fleet(
    agent: Agent,
):
    # Given a process that knows 1,000 breakers, all flushed once, and its
    # flusher thread stopped so the test runs the rounds itself
    known = [agent.breaker(f"idle-{n}") for n in range(999)]
    used = agent.breaker("used")
    agent.stop()
    taken: list[str] = []
    for breaker in [*known, used]:
        original = breaker.take_batch

        def spy(breaker=breaker, original=original):
            taken.append(breaker.name)
            return original()

        breaker.take_batch = spy

    # When one of them is called, quietly and not, and the flusher runs its rounds
    for _ in range(25):
        succeed(used)
    agent.cycle()
    agent.cycle()

    # Then only that breaker was taken (once: the second round found nothing new)
    assert taken == ["used"]
    # ...and the fleet counted its calls
    wait_until(
        lambda: int(agent.fleet.read_states(["used"])["used"].get("w_calls", 0)) >= 25,
        timeout=5,
        what="the fleet to count the used breaker's calls",
    )
