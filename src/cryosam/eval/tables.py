"""Plain aligned text tables (valid Markdown), as every benchmark and ``cryosam`` prints them."""

from __future__ import annotations


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Rows of dicts as an aligned Markdown table of ``columns`` (floats to 3 decimals)."""

    def fmt(v) -> str:
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.3f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)
