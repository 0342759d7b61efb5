"""Error texts made storable on every backend.

PostgreSQL rejects NUL in text columns, no driver can send a lone surrogate (it is not
UTF-8), and ``error_type`` is a ``VARCHAR(255)``. An exception's message often carries
text from other APIs, so the runner passes every error through ``storable_error`` before
storing it: the user's error is kept, readable, instead of being replaced by a database
error.
"""

from __future__ import annotations

#: ``error_type`` is stored in a 255-character column; longer class names are cut.
MAX_ERROR_TYPE_CHARS = 255
#: Stored error messages are cut to this many characters (64 Ki), ending with a visible
#: ``... [truncated: N characters in all]``.
MAX_ERROR_MESSAGE_CHARS = 64 * 1024


def storable_text(text: str, max_chars: int, *, mark: bool = True) -> str:
    """``text`` with NUL shown as the four characters ``\\x00``, lone surrogates
    backslash-escaped (``\\udc80``) and cut to ``max_chars`` characters (with a visible
    suffix giving the original length when ``mark``)."""
    length = len(text)
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > max_chars:
        if not mark:
            return text[:max_chars]
        suffix = f"... [truncated: {length} characters in all]"
        return text[: max(max_chars - len(suffix), 0)] + suffix
    return text


def storable_error(error_type: str, message: str) -> tuple[str, str]:
    """An error's type name and message as they can be stored on every backend."""
    return (
        storable_text(error_type, MAX_ERROR_TYPE_CHARS, mark=False),
        storable_text(message, MAX_ERROR_MESSAGE_CHARS),
    )
