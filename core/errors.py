"""The one error vocabulary of Dockyard.

Core and plugins raise these classes; one middleware (``dockyard.api.middleware``) turns
them into Docker-style responses: ``{"message": str(error)}`` with ``error.status``.
Any other exception is a bug and becomes a 500 with its traceback logged.

Messages follow Docker's wording where clients match on it (docker-py maps a 404 to
``ImageNotFound`` only when the message contains "No such image").
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class: an error with an HTTP status that the API reports as-is."""

    status = 500

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__, *args)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidArgument(DockyardError):
    """Bad input: malformed JSON, a bad name, an impossible option."""

    status = 400


class Unauthorized(DockyardError):
    """No identity where one is required."""

    status = 401


class Forbidden(DockyardError):
    """An ``authorize_request`` hook denied the request."""

    status = 403


class PayloadTooLarge(DockyardError):
    """A request body larger than the daemon reads before authorizing it."""

    status = 413


class NotFound(DockyardError):
    """The object named in the request does not exist."""

    status = 404


class NoSuchContainer(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


class NoSuchImage(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class NoSuchNetwork(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")


class NoSuchVolume(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"get {ref}: no such volume")


class NoSuchExec(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such exec instance: {ref}")


class Conflict(DockyardError):
    """The request conflicts with the object's current state."""

    status = 409


class NameInUse(Conflict):
    pass


class InUse(Conflict):
    pass


class InvalidState(Conflict):
    """An action that the object's state does not allow (e.g. remove a running container)."""

    def __init__(self, message: str, *, object_id: str = "", state: str = "", action: str = "") -> None:
        super().__init__(message)
        self.object_id, self.state, self.action = object_id, state, action


class NotModified(DockyardError):
    """Nothing to do: start a running container, stop a stopped one (Docker answers 304)."""

    status = 304


class NotSupported(DockyardError):
    """A feature that the configured driver or this engine does not offer."""

    status = 501


class Unavailable(DockyardError):
    """The daemon is shutting down, or a driver is not ready."""

    status = 503


class SkipPlugin(Exception):
    """Raised by a driver's ``check()`` when this host cannot run it.

    Logged at info level and skipped; fatal only if the operator configured that driver by name.
    """


class PluginError(Exception):
    """A startup problem with plugins or configuration: the daemon exits with this message."""


class ConfigError(PluginError):
    """The configuration file or flags are invalid."""
