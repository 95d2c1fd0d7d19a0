"""User-facing errors.

Every problem a user can fix (a bad file, a point outside the volume, a missing
voxel size) is raised as :class:`CryosamError` with a message that says what was
wrong and what to do. The command line prints it on one line and exits with
status 2; library users catch it like any exception.
"""


class CryosamError(Exception):
    """A problem with the user's input or environment that they can fix."""

    exit_code = 2


class MissingExtraError(CryosamError):
    """An optional dependency group is needed for the requested feature."""

    def __init__(self, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the optional '{extra}' dependencies: pip install 'cryosam[{extra}]'"
        )
