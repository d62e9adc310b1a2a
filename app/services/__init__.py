"""Plain functions that do the work; they import neither FastAPI nor Celery."""


class ServiceError(Exception):
    """A request that cannot be carried out; ``message`` is shown to the person as it is."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The object does not exist or the caller may not see it (the two are never told apart)."""

    status_code = 404


class Forbidden(ServiceError):
    """The caller is known and may see the object, but not do this (e.g. with an API token)."""

    status_code = 403


class Conflict(ServiceError):
    status_code = 409
