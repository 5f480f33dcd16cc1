"""The budget every expression and script runs under: a deadline and size limits.

``runner.sandbox.guards`` rewrites each checked expression so that loops, function calls and the
operations that can build huge values call a ``Budget``. A tracer or a signal cannot stop
one C-level operation (``10**10**8``, ``'a'*10**10``), so sizes are estimated *before*
the operation runs; everything else is bounded by the deadline, checked every
``CHECK_EVERY`` loop iterations or calls.

A breach raises ``Breach``, a BaseException: a script's ``except Exception`` (and its
bare ``except``, rewritten to that) cannot swallow it. ``runner.sandbox.expressions`` turns it
into ``BudgetExceeded`` naming the expression or script.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# NOTE: one value (a string, a list, a number's digits) stays below this; a few tens of
# megabytes and a few milliseconds to build.
MAX_SIZE = 2_000_000
MAX_BITS = 4_000_000  # about 1.2 million decimal digits
# Large values (over LARGE) made during one evaluation may add up to this much.
MAX_TOTAL = 10_000_000
LARGE = 10_000
CHECK_EVERY = 256
MAX_RANGE = 1_000_000
DEFAULT_TIMEOUT = 2.0

_SEQUENCES = (str, bytes, bytearray, list, tuple)
_NUMBERS = frozenset({int, float, bool})
# printf-style widths and precisions: '%10000000000d' % 1 pads in C.
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def safe_range(*args: int) -> range:
    """Build a range, refusing more than MAX_RANGE elements so list(range(...)) stays small."""
    result = range(*args)
    try:
        size = len(result)
    except OverflowError:  # longer than sys.maxsize
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise ValueError(f"range of more than {MAX_RANGE} elements is not allowed")
    return result


class Breach(BaseException):
    """Raised when an evaluation goes over its time or size budget (``what`` says which)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class Interrupted(BaseException):
    """Raised inside an evaluation when the worker was asked to stop (SIGTERM)."""


@dataclass(frozen=True)
class Limits:
    """How long an evaluation may run, on which clock, and what stops it early."""

    timeout: float = DEFAULT_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    stop: threading.Event = field(default_factory=threading.Event)

    def __deepcopy__(self, memo: dict[int, Any]) -> Limits:
        # NOTE: one set of limits (and its stop event) is shared: scripts deep-copy their
        # data, which reaches the environment through now() and local_now().
        return self


DEFAULT = Limits()


class Budget:
    """One evaluation's deadline and size account; the guards inserted by ``runner.sandbox.guards`` call it."""

    __slots__ = ("limits", "deadline", "countdown", "total")

    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = limits.clock() + limits.timeout
        self.countdown = CHECK_EVERY
        self.total = 0

    # --- time -------------------------------------------------------------------------

    def tick(self) -> None:
        """Count one loop iteration or call; look at the clock every CHECK_EVERY of them."""
        self.countdown -= 1
        if self.countdown <= 0:
            self.check()

    def check(self) -> None:
        """Raise when the deadline passed or the worker is stopping."""
        self.countdown = CHECK_EVERY
        if self.limits.stop.is_set():
            raise Interrupted("the worker is stopping")
        if self.limits.clock() > self.deadline:
            self.countdown = 0  # NOTE: sticky: every later tick raises again
            raise Breach(f"time budget of {self.limits.timeout:g} s")

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """The items of ``iterable``, ticking once per item (loops and comprehensions)."""
        for item in iterable:
            self.countdown -= 1  # NOTE: tick() inlined: this runs once per loop iteration
            if self.countdown <= 0:
                self.check()
            yield item

    # --- sizes ------------------------------------------------------------------------

    def account(self, size: int, what: str) -> None:
        """Refuse one value over MAX_SIZE, and large values adding up over MAX_TOTAL."""
        if size > MAX_SIZE:
            raise Breach(f"size budget: {what} of about {size:,} items (the limit is {MAX_SIZE:,})")
        if size > LARGE:
            self.total += size
            if self.total > MAX_TOTAL:
                raise Breach(
                    f"size budget: large values adding up to {self.total:,} items (the limit is {MAX_TOTAL:,})"
                )
            self.tick()

    def pow(self, base: Any, exponent: Any) -> Any:
        """``base ** exponent`` once its size is known to fit: bits ≈ exponent·log2|base|."""
        if type(base) in (int, bool) and type(exponent) in (int, bool) and exponent > 1 and abs(base) > 1:
            bits = exponent * math.log2(abs(base))
            if bits > MAX_BITS:
                raise Breach(
                    f"size budget: a power with about {int(bits * math.log10(2)) + 1:,} digits "
                    f"(the limit is {int(MAX_BITS * math.log10(2)):,})"
                )
        return base**exponent

    def mul(self, left: Any, right: Any) -> Any:
        """``left * right``, refusing repetitions and products over the size budget."""
        if type(left) is int and type(right) is int:
            if left.bit_length() + right.bit_length() > MAX_BITS:
                self._bits(left.bit_length() + right.bit_length(), "a product")
        elif type(left) is float or type(right) is float:
            pass
        elif isinstance(left, _SEQUENCES) and type(right) in (int, bool):
            self.account(len(left) * right, f"a repetition of {type(left).__name__}")
        elif isinstance(right, _SEQUENCES) and type(left) in (int, bool):
            self.account(len(right) * left, f"a repetition of {type(right).__name__}")
        return left * right

    def add(self, left: Any, right: Any) -> Any:
        """``left + right``, refusing concatenations over the size budget."""
        if type(left) not in _NUMBERS and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            self.account(len(left) + len(right), f"a concatenation of {type(left).__name__}")
        return left + right

    def lshift(self, left: Any, right: Any) -> Any:
        """``left << right``, refusing numbers over the size budget."""
        if type(left) is int and type(right) is int and left and right > 0:
            self._bits(left.bit_length() + right, "a shifted number")
        return left << right

    def mod(self, left: Any, right: Any) -> Any:
        """``left % right``; printf-style formatting may not pad past the size budget."""
        if isinstance(left, (str, bytes)):
            text = (left if isinstance(left, str) else left.decode("latin-1")).replace("%%", "")
            for width, precision in _PERCENT_WIDTHS.findall(text):
                for number in (width, precision):
                    if number == "*":
                        raise Breach("size budget: a '*' width in %-formatting")
                    if number and int(number) > MAX_SIZE:
                        self.account(int(number), "a %-formatted field")
        return left % right

    def formatted(self, value: Any, conversion: int, spec: str) -> str:
        """An f-string field with a format spec: no width or precision over the size budget."""
        for number in _DIGITS.findall(spec):
            size = int(number) if len(number) < 30 else MAX_SIZE + 1
            if size > LARGE:
                self.account(size, "an f-string field")
        if conversion == ord("r"):
            value = repr(value)
        elif conversion == ord("s"):
            value = str(value)
        elif conversion == ord("a"):
            value = ascii(value)
        return format(value, spec)

    def _bits(self, bits: int, what: str) -> None:
        if bits > MAX_BITS:
            raise Breach(
                f"size budget: {what} with about {int(bits * math.log10(2)):,} digits "
                f"(the limit is {int(MAX_BITS * math.log10(2)):,})"
            )

    # --- methods that build large values in C --------------------------------------------

    def method(self, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj.name(*args)``, estimating first what a growing str/bytes/list method makes."""
        bound = getattr(obj, name)
        if name == "join" and args and not isinstance(args[0], (list, tuple)):
            # NOTE: join drains an iterator in C before it sizes the result: drain it here.
            args = (list(self.iterate(args[0])), *args[1:])
        if isinstance(obj, _SEQUENCES):
            estimate = _method_size(obj, name, args, kwargs)
            if estimate is not None:
                self.account(estimate, f"{type(obj).__name__}.{name}")
        return bound(*args, **kwargs)


def _method_size(obj: Any, name: str, args: tuple, kwargs: dict) -> int | None:
    """How many items a growing method would produce, or None when it does not grow."""
    if name == "join" and args and isinstance(args[0], (list, tuple)):
        parts = args[0]
        return sum(len(p) if isinstance(p, _SEQUENCES) else 0 for p in parts) + len(obj) * len(parts)
    if name in ("ljust", "rjust", "center", "zfill") and args and type(args[0]) is int:
        return args[0]
    if name == "expandtabs":
        size = args[0] if args and type(args[0]) is int else kwargs.get("tabsize", 8)
        return len(obj) * max(int(size), 1)
    if name == "replace" and len(args) >= 2 and isinstance(args[1], _SEQUENCES):
        old = args[0]
        count = obj.count(old) if old else len(obj) + 1
        return len(obj) + count * len(args[1])
    if name == "extend" and args and hasattr(args[0], "__len__"):
        return len(obj) + len(args[0])
    return None


_RUNNING: ContextVar[Budget | None] = ContextVar("runner_budget", default=None)


class running:  # noqa: N801 - used like a function: ``with running(limits) as budget``
    """A fresh budget for one evaluation, also seen by the guarded builtins called inside it."""

    __slots__ = ("budget", "token")

    def __init__(self, limits: Limits):
        self.budget = Budget(limits)

    def __enter__(self) -> Budget:
        self.token = _RUNNING.set(self.budget)
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _RUNNING.reset(self.token)


def _accounted(result: Any, name: str) -> Any:
    """Account a collection a builtin made in the running budget (if any), then return it.

    NOTE: its input is bounded (range, repetitions, data), so one call is bounded; the
    account stops calls from C (``map(list, ...)``) adding up past the budget.
    """
    budget = _RUNNING.get()
    if budget is not None:
        budget.tick()
        if hasattr(result, "__len__"):
            budget.account(len(result), f"a {name}")
    return result


class _GuardedType(type):
    """``list``, ``dict``... as scripts see them: calls are accounted, isinstance still works."""

    real: type

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _accounted(cls.real(*args, **kwargs), cls.real.__name__)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.real)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real, name)  # dict.fromkeys


def _guarded_type(real: type) -> type:
    return _GuardedType(real.__name__, (), {"real": real})


def _sorted(iterable: Iterable[Any], /, **kwargs: Any) -> list[Any]:
    """sorted(), accounted in the running budget."""
    return _accounted(sorted(iterable, **kwargs), "sorted list")


def _sum(iterable: Iterable[Any], /, start: Any = 0) -> Any:
    """sum(); adding lists or tuples goes through the budget's size checks."""
    budget = _RUNNING.get()
    if budget is None or isinstance(start, (int, float)):
        return sum(iterable, start)
    total = start
    for item in budget.iterate(iterable):
        total = budget.add(total, item)
    return total


GUARDED_BUILTINS: dict[str, Callable[..., Any]] = {
    "list": _guarded_type(list),
    "tuple": _guarded_type(tuple),
    "set": _guarded_type(set),
    "dict": _guarded_type(dict),
    "sorted": _sorted,
    "sum": _sum,
}

GROWING_METHODS = frozenset({"join", "ljust", "rjust", "center", "zfill", "expandtabs", "replace", "extend"})
