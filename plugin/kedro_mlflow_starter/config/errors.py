"""The base of the errors a user fixes in configuration or in their environment.

They are ``click.ClickException``s, so ``kedro run`` and ``kedro mlflow ...`` print them as
one ``Error: <message>`` without a traceback (the message says what is wrong and how to fix
it; a traceback into the plugin would only hide that). In Python (a notebook, a session
created by hand) they are ordinary exceptions whose ``str`` is the message.
"""

from __future__ import annotations

import click


class KedroMlflowUserError(click.ClickException):
    """An error whose message is the whole story: what is wrong, where, and the fix."""

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)

    def __reduce__(self) -> tuple[type, tuple[str]]:  # picklable (ParallelRunner workers)
        return (type(self), (self.message,))
