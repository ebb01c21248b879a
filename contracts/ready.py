"""The line airnode logs once it serves: its supervisor (stack/) waits for it."""

READY = "airnode {id} ready on {address}"
