"""How the unversioned worker ran migrations and drains, kept so that those it started finish here.

A migration it started runs its addition and its removal as child workflows; a drain it
started plans by replica count, never continues as new, and shows its progress with every
update. A workflow that began before `patches.LEAN` replays through these, command for command
(tests/histories/2026-11-26 and 2026-12-01 hold such histories). Remove this package, and the
branches that call it, once no workflow of the unversioned worker runs (then `deprecate_patch`).
"""
