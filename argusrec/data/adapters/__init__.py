"""Adapters: one module per raw format, each returning an :class:`~argusrec.data.adapters.base.EventSource`."""
