"""The durability policy every backend applies when it connects.

Each backend reads its store's settings and says, in one sentence, what a crash could lose under
them (nothing: the full promise). Anything short of the full promise is refused with
`ConfigError` when `Settings.strict_durability` is set, and otherwise logged once per store and
loss (a warning on the `workclaim` logger), so a process opening many queues warns once.
"""

from __future__ import annotations

import logging
import threading

from workclaim.errors import ConfigError

log = logging.getLogger("workclaim")

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def enforce(store: str, loses: str | None, *, fix: str, strict: bool) -> None:
    """Apply the policy: nothing when `loses` is None; else refuse (strict) or warn once.

    `store` names the store ("Redis at host:port/0"), `loses` is what a crash can lose, `fix`
    says how to get the full promise ("set appendonly yes and appendfsync always").
    """
    if loses is None:
        return
    if strict:
        raise ConfigError(
            f"strict_durability is set and {store} is not durable: {loses}; {fix}, "
            "or turn strict_durability off"
        )
    with _warned_lock:
        if (store, loses) in _warned:
            return
        _warned.add((store, loses))
    # `durability=True` marks the record, so a handler can leave it out (the CLI's quick commands)
    log.warning("%s: %s (%s for the full promise)", store, loses, fix, extra={"durability": True})
