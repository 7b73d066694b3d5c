"""Local mail delivered into Maildir before the 250, instead of spool -> queue -> Maildir.

For mail that stays on this host the Maildir copy is itself the durable copy the client is
promised. Writing the spool first costs a second file create, fsync and unlink, a read back
and a queue hand-off per message: about half of the system CPU of a no-plugin load
(``python -m tests.bench.cpu_cost``). Mail that cannot go this way takes the spool as
always: a recipient that is not local, too many Received hops (the queue bounces it), a
plugin on the queue's hooks (``queued``, ``delivery_attempt``, ``delivery_result``), and the
recipients whose copy failed (the queue retries them; those delivered are not delivered twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from elemta_core.delivery.maildir import DeliveryError, MaildirWriter
from elemta_core.delivery.transports import LOCAL, Kind, Router
from elemta_core.hooks.pipeline import Pipeline
from elemta_core.hooks.types import HookPoint
from elemta_core.message.message import received_hops
from elemta_core.queue.envelope import Envelope, RecipientState

if TYPE_CHECKING:
    from prometheus_client import Counter

log = logging.getLogger("elemta.queue")

#: Plugins on these hooks see every message pass through the queue: such mail is queued.
QUEUE_HOOKS = (HookPoint.QUEUED, HookPoint.DELIVERY_ATTEMPT, HookPoint.DELIVERY_RESULT)


class DirectLocal:
    def __init__(self, maildir: MaildirWriter, router: Router, pipeline: Callable[[], Pipeline],
                 *, max_hops: int, enabled: bool = True, results: Counter | None = None) -> None:
        self.maildir = maildir
        self.router = router
        self.pipeline = pipeline
        self.max_hops = max_hops
        self.enabled = enabled
        self._delivered = results.labels("delivered") if results is not None else None
        self.delivered = 0

    def reconfigure(self, router: Router, max_hops: int, enabled: bool) -> None:
        """A reload: the queue's new routes and limits apply to the next message."""
        self.router, self.max_hops, self.enabled = router, max_hops, enabled

    def eligible(self, recipients: list[str]) -> bool:
        """Whether mail for ``recipients`` may skip the queue (before it is built)."""
        if not self.enabled or not recipients:
            return False
        pipe = self.pipeline()
        if any(pipe.has(h) for h in QUEUE_HOOKS):
            return False
        route = self.router.route
        return all(route(a).kind is Kind.LOCAL for a in recipients)

    async def deliver(self, env: Envelope, data: bytes) -> bool:
        """Write every recipient's copy; True once all are durable. Otherwise the recipients
        with a copy are marked delivered in ``env`` and the caller queues it for the rest."""
        if received_hops(data) > self.max_hops:
            return False
        pending = env.pending()
        copies = [self.maildir.deliver(r.address, data, queue_id=env.queue_id,
                                       mail_from=env.mail_from) for r in pending]
        outcomes: list[object]
        if len(copies) == 1:
            try:
                outcomes = [await copies[0]]
            except DeliveryError as e:
                outcomes = [e]
        else:  # concurrently, so that the copies share their syncs
            outcomes = list(await asyncio.gather(*copies, return_exceptions=True))
        done = True
        for rcpt, outcome in zip(pending, outcomes):
            if isinstance(outcome, DeliveryError):
                done = False
                log.warning("%s to=<%s> direct Maildir delivery failed (%s): queued instead",
                            env.queue_id, rcpt.address, outcome)
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            rcpt.state = RecipientState.DELIVERED
            rcpt.last_code, rcpt.last_text = 250, "2.0.0 delivered to maildir"
            self.delivered += 1
            if self._delivered is not None:
                self._delivered.inc()
            log.info("%s to=<%s> relay=%s status=delivered code=250 2.0.0 delivered to "
                     "maildir (direct)", env.queue_id, rcpt.address, LOCAL.key)
        return done
