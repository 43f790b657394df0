"""Running one execution: the claim, the graph node by node, every step recorded, the finish.

This is the worker's side of an execution's lifecycle (docs/API.md, §7 "Execution
lifecycle"). The worker itself only deals with its queue: it hands each message's execution id
to `RunExecution` and acknowledges the message once the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flowbuilder_core.executions.children import InlineChildRuns, Stop
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import (
    Execution,
    ExecutionError,
    ExecutionId,
    ExecutionRequested,
    ExecutionStatus,
    RunLimits,
    RunOutcome,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import (
    CredentialResolver,
    ExecutionRepository,
    Outbox,
    RunObserver,
    RunTransactions,
)
from flowbuilder_core.executions.templates import TRIGGERS
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import UserId, new_uuid
from flowbuilder_core.workflows.model import Definition

_log = logging.getLogger(__name__)

_OURS = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED})
"""The statuses in which a claimed run may still write: running, or cancelled by its owner
meanwhile (its remaining nodes are then recorded skipped)."""


class _Unobserved(RunObserver):
    def run_started(self, execution: Execution) -> None:
        pass

    def run_finished(self, execution: Execution, outcome: RunOutcome) -> None:
        pass

    def step_finished(self, node_type: str, step: StepResult) -> None:
        pass


@dataclass
class _Seen:
    """This run's lease, and the execution's status as last read with it, and when: the answer
    between two nodes."""

    lease: uuid.UUID
    status: ExecutionStatus | None
    at: datetime
    in_flight: StepResult | None = None
    """The step of the node running now, if one is."""
    ended: list[StepResult] = field(default_factory=list)
    """Steps that ended and are not written yet. They go with the run's next write (the next
    node's start, a status check, the finish), which follows at once, so that a node costs
    one write rather than two."""

    def taken(self, step: StepResult | None = None) -> list[StepResult]:
        """The ended steps not yet written (and `step`), handed to a write."""
        steps, self.ended = self.ended, []
        return steps if step is None else [*steps, step]


class RunExecution:
    """Run a requested execution once, however often its message is delivered.

    - The claim moves it from queued to running, or does nothing: a duplicate delivery, or an
      execution cancelled or taken before it started, returns None at once. An execution
      whose workflow version is gone fails with `workflow_version_missing`.
    - Steps are recorded only while the run is still ours, one write per node
      (`RunTransactions.record`, one statement on Postgres): a node's start goes out when it
      starts, together with the end of the node before it (which ended an instant earlier),
      and the last node's end goes with the finish. A trigger's start and end go with the
      next write, since it does nothing but hand on its input. Recording answers the
      execution's current status too, so between two nodes the run knows whether to go on
      without another write; an answer older than `status_fresh` is asked again. A crash
      loses at most the node in flight and the end of the node before it.
    - A run whose execution was cancelled stops before its next node, records the rest
      `skipped`, and ends `cancelled`. A run whose execution was finished by someone else
      (the lost-run sweep's `worker_lost`, after which its owner may retry it) is no longer
      ours: it stops before its next node, writes nothing more, and returns None.
    - An owner runs at most `limits.max_running` executions at once: a claim past that parks
      the execution (it stays queued), and each finish hands its slot to the owner's oldest
      parked one by sending its message again.
    - A run that takes longer than `limits.timeout_s` (waiting in `util.delay` included) fails
      with `run_timeout`, and so does the node it was running.
    - While it runs, its heartbeat is refreshed every `heartbeat_s`, so that a slow node is
      not taken for a lost worker.
    - `observer` hears when the run starts, each node that ends, and how the run ended
      (metrics); it never changes the run.
    - Cancelling the task (a worker stopping past its grace period) releases the run: the
      execution goes back to queued, unstarted and without steps, for the next worker to run
      from its first node (its message comes back); then the cancellation goes on. Only the
      lease holder can release, and only a running execution: a cancel or a sweep wins.
    """

    def __init__(
        self,
        transactions: RunTransactions,
        engine: Engine,
        credentials: CredentialResolver,
        clock: Clock,
        *,
        limits: RunLimits | None = None,
        heartbeat_s: float = 15.0,
        status_fresh: timedelta = timedelta(seconds=0.5),
        observer: RunObserver | None = None,
    ) -> None:
        self._transactions, self._engine = transactions, engine
        self._credentials, self._clock = credentials, clock
        self._limits = limits if limits is not None else RunLimits()
        self._heartbeat_s, self._status_fresh = heartbeat_s, status_fresh
        self._observer = observer if observer is not None else _Unobserved()

    async def __call__(self, execution_id: ExecutionId) -> RunOutcome | None:
        lease = new_uuid()
        claimed = await self._claim(execution_id, lease)
        if claimed is None:
            return None
        execution, definition = claimed
        self._observer.run_started(execution)
        seen = _Seen(lease, ExecutionStatus.RUNNING, self._clock.now())
        heartbeat = asyncio.create_task(self._beat(execution_id, seen))
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                outcome = await self._run(execution, definition, seen)
        except TimeoutError:
            outcome = await self._time_out(execution.id, seen)
        except asyncio.CancelledError:
            await asyncio.shield(self._release(execution_id, seen.lease))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if seen.status not in _OURS:
            return None  # finished by someone else: nothing more of it is ours to write
        await self._finish(execution, seen, outcome)
        self._observer.run_finished(execution, outcome)
        return outcome

    async def _run(
        self,
        execution: Execution,
        definition: Definition,
        seen: _Seen,
        depth: int = 0,
        above: Stop | None = None,
    ) -> RunOutcome:
        """Run the graph of a claimed (or child) execution at `depth`, stopping when it is
        cancelled or no longer ours, or when the run `above` it (its parent's) stops."""
        node_types = {node.id: node.type for node in definition.nodes}

        async def on_step(step: StepResult) -> None:
            if step.status is StepStatus.RUNNING:
                seen.in_flight = step
                if node_types.get(step.node_id) in TRIGGERS:
                    # A trigger's output is the input it was given: it starts and ends at
                    # once, so its start goes with its end, in the run's next write.
                    seen.ended.append(step)
                else:
                    await self._record(execution.id, seen.taken(step), seen)
                return
            seen.in_flight = None
            seen.ended.append(step)
            if step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
                self._observer.step_finished(node_types.get(step.node_id, "unknown"), step)

        async def should_stop() -> bool:
            if self._clock.now() - seen.at > self._status_fresh:
                await self._record(execution.id, seen.taken(), seen)
            if seen.status is not ExecutionStatus.RUNNING:
                return True
            return above is not None and await above()

        children = InlineChildRuns(
            transactions=self._transactions,
            clock=self._clock,
            parent=execution,
            depth=depth,
            parent_stopped=should_stop,
            drive=self._drive_child,
        )
        return await self._engine.run(
            owner=execution.owner_id,
            definition=definition,
            input=execution.input,
            credentials=self._credentials,
            on_step=on_step,
            should_stop=should_stop,
            children=children,
        )

    async def _drive_child(
        self, child: Execution, definition: Definition, depth: int, above: Stop
    ) -> RunOutcome:
        """Run a child execution (already started under its lease) to its end, with its own
        heartbeat, and record how it ended. Cancelled (its parent's run stopping or timing
        out), it is finished `cancelled` on the way out."""
        assert child.lease is not None
        seen = _Seen(child.lease, ExecutionStatus.RUNNING, self._clock.now())
        heartbeat = asyncio.create_task(self._beat(child.id, seen))
        try:
            outcome = await self._run(child, definition, seen, depth, above)
        except asyncio.CancelledError:
            stopped = RunOutcome(ExecutionStatus.CANCELLED)
            await asyncio.shield(self._finish_child(child, seen, stopped))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if seen.status not in _OURS:
            lost = ExecutionError(
                "worker_lost", "The sub-workflow's execution was ended elsewhere."
            )
            return RunOutcome(ExecutionStatus.FAILED, lost)
        await self._finish_child(child, seen, outcome)
        return outcome

    async def _finish_child(self, child: Execution, seen: _Seen, outcome: RunOutcome) -> None:
        """Record how a child ended (`_end`). A child hands no slot on: it took none (its
        parent's finish, or the periodic resume, does)."""
        await self._end(child, seen, outcome)

    async def _end(self, execution: Execution, seen: _Seen, outcome: RunOutcome) -> bool:
        """Write the steps not yet written, and how the run ended if the execution is still
        running under its lease (a cancel wins): one write from the execution as it was
        claimed, nothing read but whether its owner has executions parked (the answer)."""
        ended = dataclasses.replace(execution, steps=[])
        _apply(ended, outcome, self._clock.now())
        return await self._transactions.finish(ended, seen.lease, seen.taken())

    async def _time_out(self, execution_id: ExecutionId, seen: _Seen) -> RunOutcome:
        """The run passed its deadline: the node it was running fails with `run_timeout`."""
        running = seen.in_flight
        error = ExecutionError(
            "run_timeout",
            f"The run took longer than its {self._limits.timeout_s:g} s limit.",
            None if running is None else running.node_id,
        )
        if running is not None:
            failed = StepResult(
                running.node_id,
                StepStatus.FAILED,
                started_at=running.started_at,
                finished_at=self._clock.now(),
                error=error,
            )
            seen.ended.append(failed)
        return RunOutcome(ExecutionStatus.FAILED, error)

    async def _claim(
        self, execution_id: ExecutionId, lease: uuid.UUID
    ) -> tuple[Execution, Definition] | None:
        """The claimed execution and its definition; None when not claimed (not queued any
        more, or parked for want of a slot), or when its workflow version is gone (it then
        fails with `workflow_version_missing`)."""
        claimed = await self._transactions.claim(
            execution_id, self._clock.now(), lease, max_running=self._limits.max_running
        )
        if claimed is None:
            return None
        execution = claimed.execution
        if claimed.version is None:
            missing = ExecutionError("workflow_version_missing", "The workflow version is gone.")
            ended = dataclasses.replace(execution, steps=[])
            ended.fail(missing, at=self._clock.now())
            await self._transactions.finish(ended, lease)
            return None
        return execution, claimed.version.definition

    async def _record(
        self, execution_id: ExecutionId, steps: list[StepResult], seen: _Seen
    ) -> None:
        """Beat the heart, and record `steps` if the run is still ours; note the status seen."""
        status = await self._transactions.record(execution_id, seen.lease, self._clock.now(), steps)
        seen.status, seen.at = status, self._clock.now()

    async def _beat(self, execution_id: ExecutionId, seen: _Seen) -> None:
        """Each beat on its own: a failed one (a database failover) is tried again later. A
        beat writes no steps, so a failed one loses none."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._record(execution_id, [], seen)
            except Exception:
                _log.warning("heartbeat failed; will try again", exc_info=True)

    async def _release(self, execution_id: ExecutionId, lease: uuid.UUID) -> None:
        """Hand the run back to the queue. If the database cannot be reached now, the run stays
        running without a heartbeat, and the lost-run sweep finishes it as `worker_lost`."""
        try:
            async with self._transactions() as tx:
                if await tx.executions.release(execution_id, lease):
                    await tx.uow.commit()
        except Exception:
            _log.warning("could not release the run; the lost-run sweep will end it", exc_info=True)

    async def _finish(self, execution: Execution, seen: _Seen, outcome: RunOutcome) -> None:
        """Record how the run ended (`_end`); then hand the slot it freed to the owner's
        oldest parked execution, once the finish is durable (a unit of work does not read its
        own writes)."""
        waiting = await self._end(execution, seen, outcome)
        if not waiting:  # the common case: no second unit of work
            return
        async with self._transactions() as tx:
            if await resume_parked(tx.executions, tx.outbox, execution.owner_id, self._limits):
                await tx.uow.commit()


def _apply(execution: Execution, outcome: RunOutcome, now: datetime) -> None:
    """Move a running execution to how its run ended."""
    if outcome.status is ExecutionStatus.SUCCEEDED:
        execution.succeed(at=now)
    elif outcome.status is ExecutionStatus.CANCELLED:
        execution.cancel(at=now)
    else:
        execution.fail(outcome.error or ExecutionError("failed", "The run failed."), at=now)


async def resume_parked(
    executions: ExecutionRepository, outbox: Outbox, owner: UserId, limits: RunLimits
) -> int:
    """Send again the messages of the owner's parked executions that fit their free slots;
    how many. The caller commits (the messages and the unparking go together)."""
    resumed = await executions.unpark(owner, limits.max_running)
    for execution in resumed:
        await outbox.add(ExecutionRequested.of(execution))
    return len(resumed)
