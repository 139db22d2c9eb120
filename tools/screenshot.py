"""Screenshot the first table on a built page whose text contains a phrase, as a reader sees it at
1400 px (headless Chromium; the page copied beside itself so that its CSS loads).

    .venv/bin/python tools/screenshot.py _build/html/book/06_coherence_regulariser.html \\
        "regularised − plain (points)" docs/screenshots/06_accuracy-table-1400.png
"""
import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

WIDTH, HEIGHT = 1400, 800
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--user-data-dir=/tmp/mamlscope-screenshot", "--virtual-time-budget=3000"]


def main(page: str, phrase: str, out: str) -> None:
    src = Path(page).resolve()
    copy = src.with_name("screenshot-" + src.name)
    js = ("<script>window.addEventListener('load', () => { const t = [...document.querySelectorAll('article table')]"
          f".find(t => t.textContent.includes({json.dumps(phrase)})); document.body.setAttribute('data-top', "
          "t ? String(t.getBoundingClientRect().top + window.scrollY) : '-1'); });</script>")
    copy.write_text(src.read_text().replace("</body>", js + "</body>"))
    try:
        dom = subprocess.run(CHROMIUM + [f"--window-size={WIDTH},{HEIGHT}", "--dump-dom", copy.as_uri()],
                             capture_output=True, text=True, check=True).stdout
        top = float(re.search(r'data-top="([^"]+)"', dom).group(1))
        if top < 0:
            raise SystemExit(f"no table on {page} contains {phrase!r}")
        y0 = max(0, int(top) - 160)  # a headless screenshot cannot scroll: draw a taller window, crop
        subprocess.run(CHROMIUM + [f"--window-size={WIDTH},{y0 + HEIGHT}", f"--screenshot={out}", copy.as_uri()],
                       capture_output=True, check=True)
    finally:
        copy.unlink()
    Image.open(out).crop((0, y0, WIDTH, y0 + HEIGHT)).save(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
