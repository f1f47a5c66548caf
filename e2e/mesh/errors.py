"""The mesh's one error type for API objects, in its own module so that every parser
(``objects``, ``filters``, ``durations``) can raise it without importing the others."""


class ObjectError(ValueError):
    """An object the mesh cannot use; the message says which field and why."""
