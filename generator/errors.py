"""The one exception family the CLI reports as a user-facing error."""

from __future__ import annotations


class GeneratorError(Exception):
    """Base of every error caused by bad input rather than a bug in the generator."""


class ConfigError(GeneratorError):
    """The config file is unreadable or invalid; carries every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        """Record where the config came from and each problem, one line each."""
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} config {noun}:\n{lines}")


class RenderError(GeneratorError):
    """A template failed to render."""


class BundleError(GeneratorError):
    """esbuild (or the fallback bundler) rejected the rendered JavaScript."""


class StorageError(GeneratorError):
    """The relay's outbox cannot be used (disk full, read-only, corrupt, not a database file)."""

    # Distinct from bad input (1) and usage errors (2), so a supervisor can tell a storage fault apart.
    exit_code = 3


class OutboxUnavailable(StorageError):
    """The outbox cannot be used now but may be soon (a full disk, a database server that is down).

    At start the relay does not exit for this: it serves, answers /readyz and intake with 503, and keeps trying.
    """
