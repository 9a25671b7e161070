"""One way to write the project's commands: absl flags on a private `FlagValues`.

Every command (train.py, eval.py, predict.py, `python -m asmnet_jax.export`,
`python -m asmnet_jax.data.build`, the tools, `python -m asmnet_jax.synthetic.faces`)
is a module with

  def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("workdir", None, "A train.py work directory.", required=True,
                        flag_values=fv)
    config_flags.DEFINE_config_file("config", cli.config_file("synthetic"),
                                    "Training configuration file.", flag_values=fv)

  def _run(fv: flags.FlagValues) -> int | None:  # or (fv, args) with `positional`
    with cli.reported(ValueError):  # our own checks: one line, not a traceback.
      config_lib.validate_config(fv.config)
    ...

  def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(define_flags, _run, argv, tuned_malloc=True)

  if __name__ == "__main__":
    sys.exit(main())

so that tests can call `main([...])` in-process and no flag is defined at import
time (two commands' `--workdir` never collide). `run`:
  * prints the module docstring and the flags for -h / --help / --helpfull (exit 0);
  * turns usage errors (an unknown flag, a missing required one, a bad value, an
    unknown `--config.<field>` (named with the closest fields, difflib), an
    unloadable config file, extra positional arguments) and `CommandError`s into one line `error: <message>` on stderr, with
    exit status 2 for usage errors (`UsageError`) and `CommandError.status` for the
    others; `--verbose` (defined on every command) adds the traceback;
  * logs at INFO through absl's handler;
  * optionally restarts the process once with the tuned allocator
    (`asmnet_jax.runtime.allocator`);
  * returns the exit status: `main`'s int, or 0 when it returns None.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
import traceback
from typing import Any, Callable, Iterator, Sequence

from absl import flags
from absl import logging

import asmnet_jax
from asmnet_jax.runtime import allocator

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
HELP_ARGS = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")
# The checkout holding the package: configs/ and the top-level scripts live there.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(asmnet_jax.__file__)))


class CommandError(Exception):
  """A failure the user can act on, reported as one line `error: <message>`.

  Attributes:
    status: the command's exit status (default 1).
  """

  def __init__(self, message: str, status: int = EXIT_FAILURE):
    super().__init__(message)
    self.status = status


class UsageError(CommandError):
  """A mistake in the command line (a bad flag or config value, a missing input it
  names): `error: <message>`, exit status 2."""

  def __init__(self, message: str):
    super().__init__(message, EXIT_USAGE)


def config_file(name: str) -> str:
  """The absolute path of configs/<name>.py in the checkout, whatever the cwd."""
  return os.path.join(REPOSITORY, "configs", f"{name}.py")


@contextlib.contextmanager
def reported(*exception_types: type[BaseException], status: int = EXIT_USAGE) -> Iterator[None]:
  """Re-raises the listed exceptions as `CommandError(str(e), status)` (`from e`).

  Wrap only the calls whose exceptions carry a message for the user (our own
  validation, a missing file the command line names), so that bugs elsewhere keep
  their traceback:

    with cli.reported(ValueError):
      config_lib.validate_config(config)
  """
  try:
    yield
  except exception_types as e:
    raise CommandError(_message(e), status) from e


def run(define_flags: Callable[[flags.FlagValues], None],
        main: Callable[..., int | None],
        argv: Sequence[str] | None = None,
        *,
        positional: str | None = None,
        tuned_malloc: bool | Callable[[flags.FlagValues], bool] = False) -> int:
  """Parses `argv` into fresh flags, runs `main` and returns the exit status.

  Args:
    define_flags: defines the command's flags on the `FlagValues` it is given
      (`flags.DEFINE_*(..., flag_values=fv)`,
      `config_flags.DEFINE_config_file(..., flag_values=fv)`).
    main: `main(fv)`, or `main(fv, args)` with `positional`, where `args` is the
      list of positional arguments (strings, in order); returns None (exit 0) or an
      exit status. It may raise `CommandError` / `UsageError` (see `reported`).
    argv: the arguments after the program name; default `sys.argv[1:]`.
    positional: the positional arguments' usage, e.g. "IMAGE [IMAGE ...]"; None
      (the default) rejects any. `main` checks their number and values itself.
    tuned_malloc: True restarts the process once with the tuned glibc allocator
      (`allocator.reexec_with_tuned_malloc`, same interpreter arguments:
      `sys.orig_argv`) before anything else; a predicate on the parsed flags (e.g.
      `lambda fv: fv.malloc == "tuned"`) decides it after parsing instead. Only for
      the real command line (`argv` None), never for in-process calls.

  Returns:
    0 on success (or `main`'s int), 2 on a usage error, `CommandError.status`.
  """
  from_command_line = argv is None
  if from_command_line and tuned_malloc is True:
    # Before the flags: defining them may import JAX (a config file), twice otherwise.
    allocator.reexec_with_tuned_malloc(sys.orig_argv[1:])  # returns if already tuned.
  argv = list(sys.argv[1:] if argv is None else argv)
  program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "command"
  fv = flags.FlagValues()
  verbose = "--verbose" in _flag_part(argv)
  try:
    # config_flags finds `--config.<field>` overrides in sys.argv, not in the argv
    # the FlagValues parses, so both must hold this command line.
    with _sys_argv([program, *argv]):
      define_flags(fv)
      if "verbose" not in fv:
        flags.DEFINE_boolean("verbose", False, "Print the traceback of a reported error.",
                             flag_values=fv)
      if any(arg in HELP_ARGS for arg in _flag_part(argv)):
        print(help_text(fv, main, positional))
        return EXIT_OK
      args = fv([program, *argv])[1:]
      for name in fv:
        # config_flags defers a config file's load error to the first attribute read.
        getattr(fv[name].value, "lock", None)
  except flags.Error as e:
    return _report(e, EXIT_USAGE, verbose)
  except (AttributeError, KeyError) as e:
    # What config_flags raises for an override of a field the config lacks.
    overrides = [arg.split("=", 1)[0] for arg in _flag_part(argv)
                 if re.match(r"--?[A-Za-z_]\w*\.", arg)]
    if not overrides:
      raise
    message = _unknown_fields_message(define_flags, program, argv, overrides, e)
    return _report(UsageError(message), EXIT_USAGE, verbose)
  except OSError as e:  # config_flags: a config file that does not load.
    return _report(e, EXIT_USAGE, verbose)
  verbose = fv.verbose
  if args and positional is None:
    return _report(UsageError(f"unexpected arguments: {' '.join(args)}"), EXIT_USAGE, verbose)

  _set_up_logging()
  if from_command_line and callable(tuned_malloc) and tuned_malloc(fv):
    allocator.reexec_with_tuned_malloc(sys.orig_argv[1:])
  try:
    status = main(fv, args) if positional is not None else main(fv)
  except CommandError as e:
    return _report(e, e.status, verbose)
  except flags.Error as e:  # e.g. a flag value `main` reads fails its validator.
    return _report(e, EXIT_USAGE, verbose)
  return EXIT_OK if status is None else int(status)


def help_text(fv: flags.FlagValues, main: Callable[..., Any],
              positional: str | None = None) -> str:
  """The command's module docstring followed by its flags (the --help output)."""
  module = sys.modules.get(getattr(main, "__module__", ""), None)
  doc = (getattr(module, "__doc__", None) or "").strip()
  usage = f"positional arguments: {positional}\n\n" if positional else ""
  flag_help = fv.get_help(prefix="  ", include_special_flags=False)
  return (f"{doc}\n\n" if doc else "") + usage + "flags:\n" + flag_help.lstrip("\n")


def _unknown_fields_message(define_flags: Callable[[flags.FlagValues], None], program: str,
                            argv: Sequence[str], overrides: Sequence[str],
                            error: BaseException) -> str:
  """`--config.foo: no field 'foo' in the config (closest: ...)` for each override
  naming no field of its config, with the closest field names (difflib)."""
  plain = [a for a in _flag_part(argv) if a.split("=", 1)[0] not in overrides]
  fv = flags.FlagValues()
  try:  # the configs without the overrides.
    with _sys_argv([program, *plain]):
      define_flags(fv)
      fv([program, *plain])
  except Exception:  # pylint: disable=broad-exception-caught
    pass  # e.g. a missing required flag: the config flags hold their defaults.
  parts = []
  for override in overrides:
    flag_name, _, path = override.lstrip("-").partition(".")
    try:
      fields = _field_paths(fv[flag_name].value)
    except Exception:  # pylint: disable=broad-exception-caught
      continue  # not a config flag, or one whose file does not load.
    if path in fields:
      continue
    close = difflib.get_close_matches(path, fields, n=3, cutoff=0.6)
    hint = f" (closest: {', '.join(close)})" if close else ""
    parts.append(f"--{flag_name}.{path}: {path!r} is not a field of the config{hint}")
  if not parts:
    return f"{_message(error)}: not a field of the config (overrides: {' '.join(overrides)})"
  return "; ".join(parts)


def _field_paths(config: Any, prefix: str = "") -> list[str]:
  """Dotted paths of every field of a ConfigDict (and of its sub-configs)."""
  paths = []
  for key, value in config.items():
    paths.append(prefix + key)
    if hasattr(value, "items") and not isinstance(value, dict):
      paths += _field_paths(value, f"{prefix}{key}.")
  return paths


def _flag_part(argv: Sequence[str]) -> list[str]:
  """The arguments before a `--` (after it, everything is positional)."""
  return list(argv[:argv.index("--")] if "--" in argv else argv)


@contextlib.contextmanager
def _sys_argv(argv: list[str]) -> Iterator[None]:
  saved = sys.argv
  sys.argv = argv
  try:
    yield
  finally:
    sys.argv = saved


def _set_up_logging() -> None:
  """absl's handler on the root logger at INFO, as `absl.app.run` would set it up."""
  # Libraries read absl's global flags (logging's own, grain's); ours live elsewhere,
  # so give the global ones their defaults rather than leave them unparsed.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)


def _message(e: BaseException) -> str:
  """`e`'s message on one line (a multi-line message's lines joined)."""
  arg = e.args[0] if len(e.args) == 1 else None
  if isinstance(arg, BaseException):  # e.g. AttributeError(KeyError(...)).
    return _message(arg)
  text = arg if isinstance(e, KeyError) and isinstance(arg, str) else str(e)  # no quotes.
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return " ".join(lines) or type(e).__name__


def _report(e: BaseException, status: int, verbose: bool) -> int:
  if verbose:
    traceback.print_exception(e)
  print(f"error: {_message(e)}", file=sys.stderr, flush=True)
  return status
