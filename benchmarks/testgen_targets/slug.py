"""URL slugs."""

import re
import unicodedata


def slugify(text: str, max_length: int = 50) -> str:
    """Lower-case ASCII words joined by hyphens, at most ``max_length`` characters, never
    ending in a hyphen.

    >>> slugify("Hello, World!")
    'hello-world'
    >>> slugify("Crème brûlée")
    'creme-brulee'
    """
    if max_length < 1:
        raise ValueError("max_length must be positive")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = "-".join(words)
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
    return slug
