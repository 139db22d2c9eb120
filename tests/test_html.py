"""The book as a reader gets it: built with Jupyter Book (Sphinx warnings are errors) from the
notebooks as they are (with whatever outputs they carry; nothing is executed here), then every
page opened in headless Chromium.

* every chapter carries its outputs (executed, no errors), and its page shows its figures
  (images that exist and decode) and its verdict table;
* the scorecard lists every claim and links to chapters;
* citations resolve to bibliography entries; no internal link or resource is broken;
* no page offers a launch (Binder) or repository button to a repository that does not exist;
  the intro says how to run the book locally instead.

The browser checks skip only when no Chromium is installed (Debian: ``apt-get install chromium``;
or point ``$CHROMIUM`` at one). ``$MAMLSCOPE_HTML_SOURCE`` builds another copy of the book.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from mamlscope.publish import scorecard
from mamlscope.publish.notebooks import chapters, summary_pages
from mamlscope.verdict import claims

pytestmark = pytest.mark.book  # executes chapters or builds the HTML: `make test-quick` skips it

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(os.environ.get("MAMLSCOPE_HTML_SOURCE", ROOT))
CHAPTERS = chapters(SOURCE)
SUMMARIES = summary_pages(SOURCE)
VERDICT_WORDS = re.compile(r"\b(reproduced|partly|not reproduced|inconclusive)\b")
EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:", "about:")


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable"):
        if name and (path := shutil.which(name)):
            return path
    return None


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set $CHROMIUM)")


class Page(HTMLParser):
    """What the checks need from one HTML document."""
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, set[str]]] = []
        self.refs: list[tuple[str, str]] = []        # (tag, href/src)
        self.imgs: list[str] = []
        self.ids: set[str] = set()
        self.citations: list[str] = []               # hrefs of in-text citations
        self.bib_entries: set[str] = set()           # ids of bibliography entries
        self.tables: list[str] = []                  # text of each table
        self.text: list[str] = []
        self.unlinked: list[str] = []                # text outside any link
        self._table: list[str] | None = None
        self.path: Path | None = None                # the file it was read from
        self.feed(html)

    def _inside(self, cls: str) -> bool:
        return any(cls in classes for _, classes in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) is not None and tag in ("a", "link", "img", "script", "iframe", "source"):
                self.refs.append((tag, a[key]))
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "a" and a.get("href") and self._inside("bibtex-citation"):
            self.citations.append(a["href"])
        if "citation" in classes and a.get("role") == "doc-biblioentry" and a.get("id"):
            self.bib_entries.add(a["id"])
        if tag == "table":
            self._table = []
        if tag not in self.VOID:
            self.stack.append((tag, classes))

    def handle_endtag(self, tag):
        if tag == "table" and self._table is not None:
            self.tables.append(" ".join("".join(self._table).split()))
            self._table = None
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if any(tag in ("script", "style") for tag, _ in self.stack):
            return
        self.text.append(data)
        if not any(tag == "a" or "cell_input" in classes for tag, classes in self.stack):
            self.unlinked.append(data)  # prose and outputs, not code
        if self._table is not None:
            self._table.append(data + " ")


def local_target(page: Path, ref: str) -> tuple[Path, str] | None:
    """The file and fragment a relative href/src points at, or None for external ones."""
    if not ref or ref.startswith(EXTERNAL) or ref.startswith("//"):
        return None
    parts = urlsplit(ref)
    if parts.scheme and parts.scheme != "file":
        return None
    path = unquote(parts.path)
    target = page if not path else (Path(path) if path.startswith("/") else page.parent / path)
    return target.resolve(), unquote(parts.fragment)


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The book built once (into a temporary folder; the source tree is not written to)."""
    out = tmp_path_factory.mktemp("book-html")
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(SOURCE), "--path-output", str(out), "--warningiserror",
                           "--keep-going"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"jupyter-book build failed (warnings are errors):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return out / "_build" / "html"


def page_names() -> list[str]:
    """Every page of the table of contents, in reading order (the root first)."""
    toc = yaml.safe_load((SOURCE / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


@pytest.fixture(scope="module")
def rendered(html, tmp_path_factory) -> dict[str, Page]:
    """Every page of the table of contents as Chromium renders it (the DOM after scripts ran)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    pages = {}
    for name in page_names():
        path = html / f"{name}.html"
        assert path.is_file(), f"{name} was not built"
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--no-first-run", "--no-default-browser-check",
             f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "</html>" in proc.stdout, f"Chromium could not open {name}: {proc.stderr[-2000:]}"
        pages[name] = Page(proc.stdout)
        pages[name].path = path
    return pages


def notebook(name: str) -> dict:
    return json.loads((SOURCE / "book" / f"{name}.ipynb").read_text())


@pytest.mark.parametrize("name", CHAPTERS + SUMMARIES)
def test_notebook_carries_its_outputs(name):
    """The book shows committed outputs: every code cell ran, none raised."""
    cells = [c for c in notebook(name)["cells"] if c["cell_type"] == "code"]
    unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unrun, f"book/{name}.ipynb: code cells {unrun} were not executed: run make book (or python -m mamlscope rerun {name})"
    errors = [o.get("ename") for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"book/{name}.ipynb carries errors {errors}"


@needs_chromium
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_shows_figures_and_verdicts(rendered, name):
    page = rendered[f"book/{name}"]
    from PIL import Image

    for src in page.imgs:
        assert src, f"{name}: an <img> without src"
        if src.startswith("data:image/png;base64,"):  # a figure that reflows: its PNG is inline
            import base64
            import io

            with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as img:
                assert min(img.size) > 0, f"{name}: an empty inline figure"
                img.verify()
            continue
        target = local_target(page.path, src)
        if target is None:
            continue
        file = target[0]
        assert file.is_file(), f"{name}: image {src} is missing"
        if file.suffix == ".svg":
            assert "<svg" in file.read_text(errors="replace"), f"{name}: {src} is not an SVG"
        else:
            with Image.open(file) as img:  # a real picture, not an empty or broken file
                assert min(img.size) > 0, f"{name}: {src} is empty"
                img.verify()
    figures = [s for s in page.imgs if "_images/" in s or s.startswith("data:image/")]
    expected = sum(1 for c in notebook(name)["cells"] for o in c.get("outputs", [])
                   if any(k.startswith("image/") for k in o.get("data", {})))
    assert len(figures) >= expected, f"{name}: {expected} figures in the notebook, {len(figures)} on the page"
    assert any(VERDICT_WORDS.search(t) for t in page.tables), f"{name}: no verdict table on the page"
    injected = [c for c in notebook(name)["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    if injected:  # papermill's cell stays in the notebook, not on the page
        assert "# Parameters" not in " ".join(page.text), f"{name}: the injected-parameters cell is shown"


@needs_chromium
def test_scorecard_page_lists_every_claim(rendered):
    if not SUMMARIES:
        pytest.skip("no scorecard in _toc.yml")
    page = rendered["book/scorecard"]
    table = " ".join(t for t in page.tables if " claim " in f" {t} " and "verdict" in t)
    assert table, "the scorecard page has no claims table"
    for claim_id in claims.CLAIMS:
        assert re.search(rf"\b{claim_id}\b", table), f"{claim_id} missing from the scorecard"
    assert VERDICT_WORDS.search(table) or scorecard.NOT_RUN in table
    links = [r for tag, r in page.refs
             if tag == "a" and any(r.split("#")[0].endswith(f"{c}.html") for c in CHAPTERS)]
    if VERDICT_WORDS.search(table):  # some claim was judged: its row links to its chapter
        assert links, "judged claims do not link to their chapters"


@needs_chromium
def test_citations_resolve(rendered, html):
    cited_pages = 0
    for name, page in rendered.items():
        text = " ".join(page.text)
        assert "??" not in text, f"{name}: '??' in the text (an unresolved reference)"
        assert not re.search(r"\{cite\}|:cite:`", text), f"{name}: a citation role was not rendered"
        source = (SOURCE / f"{name}.md") if (SOURCE / f"{name}.md").is_file() else None
        raw = source.read_text() if source else "".join(
            "".join(c["source"]) for c in notebook(Path(name).name)["cells"] if c["cell_type"] == "markdown")
        keys = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", raw) for k in group.split(",")}
        if not keys:
            continue
        cited_pages += 1
        assert len(page.citations) >= len(keys), f"{name}: {len(keys)} keys cited, {len(page.citations)} rendered"
        for href in page.citations:
            target, fragment = local_target(page.path, href)
            entries = rendered.get(str(target.relative_to(html.resolve()).with_suffix("")))
            entries = entries or Page(target.read_text())
            assert fragment in entries.bib_entries, f"{name}: citation {href} does not lead to a bibliography entry"
    assert cited_pages, "no page cites anything: the bibliography check found nothing to check"


def test_no_broken_internal_links(html):
    """Every relative href/src of every built page exists; anchors into book pages exist too."""
    broken = []
    pages = sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)
    parsed = {p.resolve(): Page(p.read_text(errors="replace")) for p in pages}
    for path, page in parsed.items():
        for tag, ref in page.refs:
            target = local_target(path, ref)
            if target is None:
                continue
            file, fragment = target
            if file.is_dir():
                file = file / "index.html"
            if not file.exists():
                broken.append(f"{path.relative_to(html.resolve())}: {tag} {ref}")
            elif fragment and file in parsed and tag == "a" and fragment not in parsed[file].ids:
                broken.append(f"{path.relative_to(html.resolve())}: {ref} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:50])


@needs_chromium
def test_no_button_launches_what_cannot_run(rendered):
    config = yaml.safe_load((SOURCE / "_config.yml").read_text())
    assert "launch_buttons" not in config and "repository" not in config
    for name, page in rendered.items():
        links = [r for tag, r in page.refs if tag == "a"]
        dead = [r for r in links if "mybinder.org" in r or "github.com/mamlscope" in r]
        assert not dead, f"{name}: links to a launch service or repository that cannot serve it: {dead}"
    intro = (SOURCE / "book" / "intro.md").read_text()
    assert "## Run it on your machine" in intro and "make book" in intro


@needs_chromium
def test_the_scorecards_first_screen_shows_the_tallies_and_a_verdict(html, tmp_path):
    """At 1400 × 800 px, before any scrolling: the per-paper tallies table and at least one
    claim's verdict badge lie within the first 800 px of the scorecard page."""
    if not SUMMARIES:
        pytest.skip("no scorecard in _toc.yml")
    script = """<script>window.addEventListener('load', () => {
      const top = el => el ? el.getBoundingClientRect().top + window.scrollY : -1;
      const tables = [...document.querySelectorAll('table')];
      const tally = tables.find(t => /paper/.test(t.textContent) && /claims/.test(t.textContent));
      const claim = tables.find(t => /\\bid\\b/.test(t.rows[0] ? t.rows[0].textContent : '')
                                  && t.querySelector('.sd-badge'));
      const badge = claim ? claim.querySelector('tbody .sd-badge') : null;
      document.body.setAttribute('data-probe', JSON.stringify({tally: top(tally),
        tallyBottom: tally ? top(tally) + tally.getBoundingClientRect().height : -1,
        badge: top(badge), text: badge ? badge.textContent : ''}));
    });</script>"""
    got = probe(html, "book/scorecard", script, 1400, tmp_path / "profile", "data-probe", height=800)
    assert 0 <= got["tally"] and got["tallyBottom"] <= 800, f"the tallies are not on the first screen: {got}"
    assert 0 <= got["badge"] <= 800 and VERDICT_WORDS.search(got["text"]), f"no verdict on the first screen: {got}"


def test_every_script_and_stylesheet_is_served_by_the_book(html):
    """Offline, the book renders as online: no page loads a script or stylesheet from another host
    (MathJax is copied into _static by sphinx-mathjax-offline)."""
    remote = re.compile(r'<(?:script|link)\b[^>]*(?:src|href)="(https?:)?//[^"]*"')
    offenders = {}
    for page in html.rglob("*.html"):
        hits = [m.group(0) for m in remote.finditer(page.read_text()) if "<link" not in m.group(0)
                or 'rel="stylesheet"' in m.group(0)]
        if hits:
            offenders[str(page.relative_to(html))] = hits[:2]
    assert not offenders, f"pages load from other hosts: {offenders}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_no_page_names_a_chapter_without_linking_it(rendered):
    """Every "chapter N" a reader sees in prose or in an output is a link to that chapter (code
    cells' own text is code, and not checked)."""
    plain = re.compile(r"\b[Cc]hapters? \d")
    found = {name: sorted({m.group(0) for m in plain.finditer(" ".join(p.unlinked))})
             for name, p in rendered.items()}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"plain-text chapter references: {found}"


# Where a header is drawn: for every table on every page, at a desktop and a phone width, each
# header row spans as many visible columns as the body, and each header cell's x-range overlaps
# that of the body cell in its column (a hidden corner cell shifts every header one to the left).
TABLE_PROBE = """<script>window.addEventListener('load', () => {
  const visible = c => { const s = getComputedStyle(c), r = c.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0; };
  const columns = row => { const out = [];
    for (const c of row.cells) if (visible(c)) for (let k = 0; k < (c.colSpan || 1); k++) out.push(c);
    return out; };
  const bad = []; const tables = [...document.querySelectorAll('article table')];
  tables.forEach((t, i) => {
    const head = t.tHead ? [...t.tHead.rows] : [], body = t.tBodies.length ? [...t.tBodies[0].rows] : [];
    if (!head.length || !body.length) return;
    const b = columns(body[0]);
    const name = [...head[head.length - 1].cells].map(c => c.textContent.trim()).join(' | ').slice(0, 120);
    head.forEach((row, r) => {
      const h = columns(row);
      if (h.length !== b.length) { bad.push(`table ${i} (${name}): header row ${r} has ${h.length} columns, the body ${b.length}`); return; }
      h.forEach((cell, j) => { const x = cell.getBoundingClientRect(), y = b[j].getBoundingClientRect();
        if (!(x.left < y.right - 0.5 && y.left < x.right - 0.5))
          bad.push(`table ${i} (${name}): header '${cell.textContent.trim()}' is not over column ${j}`); });
    });
  });
  document.body.setAttribute('data-tables', JSON.stringify({n: tables.length, bad}));
});</script>"""


#: Headless Chromium will not open a window narrower than this (a 390 px window is laid out at
#: 500 px): narrower widths are probed in an iframe of that width, whose media queries and layout
#: see the iframe's width, as a phone's would.
MIN_WINDOW = 500


def probe(html: Path, name: str, script: str, width: int, profile: Path, attribute: str,
          height: int = 900) -> dict:
    """Open page ``name`` of the built book in a ``width`` × ``height`` px viewport with ``script``
    appended (a copy beside it, so that its CSS and scripts load); the JSON the script left in
    ``attribute``. Below :data:`MIN_WINDOW` the page is shown in an iframe ``width`` px wide."""
    src = html / f"{name}.html"
    copy = src.with_name(f"{src.stem}-probe.html")
    frame = src.with_name(f"{src.stem}-frame.html")
    target = copy
    if width < MIN_WINDOW:  # the page tells its parent what the probe found (file:// frames are cross-origin)
        script += ("<script>window.addEventListener('load', () => setTimeout(() => parent.postMessage("
                   f"document.body.getAttribute('{attribute}'), '*'), 0));</script>")
        frame.write_text(
            f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{copy.name}" '
            f'style="width:{width}px;height:{height}px;border:0"></iframe><script>'
            f"window.addEventListener('message', e => document.body.setAttribute('{attribute}', e.data));"
            "</script></body></html>")
        target = frame
    copy.write_text(src.read_text().replace("</body>", script + "</body>"))
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
             f"--window-size={max(width, MIN_WINDOW)},{height}", f"--user-data-dir={profile}",
             "--virtual-time-budget=3000", "--dump-dom", target.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        copy.unlink()
        frame.unlink(missing_ok=True)
    m = re.search(rf'{attribute}="([^"]*)"', proc.stdout)
    assert m, f"the probe did not run on {name}: {proc.stderr[-1000:]}"
    from html import unescape
    return json.loads(unescape(m.group(1)))


def test_the_probe_sees_a_phones_width(html, tmp_path):
    """The narrow probes are laid out at the width asked for, not at Chromium's minimum window."""
    script = ("<script>window.addEventListener('load', () => document.body.setAttribute('data-w', "
              "JSON.stringify({inner: window.innerWidth})));</script>")
    assert probe(html, "book/intro", script, 390, tmp_path / "profile", "data-w") == {"inner": 390}
    assert probe(html, "book/intro", script, 1400, tmp_path / "profile", "data-w") == {"inner": 1400}


@needs_chromium
@pytest.mark.parametrize("width", [1400, 390])
def test_every_table_header_is_drawn_over_its_column(html, tmp_path, width):
    problems, seen = [], 0
    for name in page_names():
        got = probe(html, name, TABLE_PROBE, width, tmp_path / "profile", "data-tables")
        seen += got["n"]
        problems += [f"{name}: {b}" for b in got["bad"]]
    assert seen > 50, f"only {seen} tables found: the probe looked in the wrong place"
    assert not problems, f"{len(problems)} misdrawn at {width} px:\n" + "\n".join(problems[:40])



# Nothing scrolls sideways but a wide table inside its column: no text output, figure or page is
# wider than the column it sits in.
WIDTH_PROBE = """<script>window.addEventListener('load', () => {
  const bad = [];
  const col = document.querySelector('article') || document.body;
  const right = col.getBoundingClientRect().right + 1;
  document.querySelectorAll('article .cell_output pre').forEach((p, i) => {
    if (p.scrollWidth > p.clientWidth + 1) bad.push(`text output ${i} scrolls: ${p.textContent.trim().slice(0, 80)}`); });
  document.querySelectorAll('article img').forEach((im, i) => {
    if (im.getBoundingClientRect().right > right) bad.push(`image ${i} (${im.getAttribute('alt')}) is wider than the column`); });
  if (document.scrollingElement.scrollWidth > window.innerWidth + 1)
    bad.push(`the page scrolls sideways (${document.scrollingElement.scrollWidth} px in ${window.innerWidth})`);
  document.body.setAttribute('data-widths', JSON.stringify({bad}));
});</script>"""


@needs_chromium
@pytest.mark.parametrize("width", [1400, 390])
def test_no_text_output_or_page_scrolls_sideways(html, tmp_path, width):
    problems = []
    for name in page_names():
        problems += [f"{name}: {b}" for b in probe(html, name, WIDTH_PROBE, width, tmp_path / "profile", "data-widths")["bad"]]
    assert not problems, f"{len(problems)} at {width} px:\n" + "\n".join(problems[:40])


# A figure of more than three panels reflows on a phone: the browser shows its one-column
# rendition there, so that no panel is drawn narrower than about 300 px at 390 px.
PANEL_PROBE = """<script>window.addEventListener('load', () => {
  const out = [];
  document.querySelectorAll('article picture.reflow img').forEach(im => {
    const narrow = im.currentSrc !== im.src, source = im.parentElement.querySelector('source');
    const columns = Number((narrow ? source : im).getAttribute('data-columns'));
    out.push({narrow, columns, panel: im.getBoundingClientRect().width / columns, alt: im.getAttribute('alt').slice(0, 60)});
  });
  document.body.setAttribute('data-panels', JSON.stringify(out));
});</script>"""
MIN_PANEL_PX = 280


@needs_chromium
@pytest.mark.parametrize("width", [1400, 390])
def test_figures_of_many_panels_reflow_on_a_phone(html, tmp_path, width):
    seen, problems = 0, []
    for name in page_names():
        for fig in probe(html, name, PANEL_PROBE, width, tmp_path / "profile", "data-panels"):
            seen += 1
            if fig["narrow"] != (width < 720):
                problems.append(f"{name}: {fig['alt']!r} shows the {'narrow' if fig['narrow'] else 'wide'} rendition")
            if width < 720 and fig["panel"] < MIN_PANEL_PX:
                problems.append(f"{name}: {fig['alt']!r} panels {fig['panel']:.0f} px wide")
    assert seen >= 4, f"only {seen} reflowing figures (chapters 3, 5 and 7 draw four)"
    assert not problems, "\n".join(problems)


def test_prev_next_reads_intro_scorecard_chapters_then_method_and_reports():
    names = [Path(n).name for n in page_names()]
    assert names[:2] == ["intro", "scorecard"] and names[2:2 + len(CHAPTERS)] == CHAPTERS
    assert {"methods", "glossary", "execution", "paper_scale"} <= set(names[2 + len(CHAPTERS):])


def test_bibliography_labels_read_like_the_in_text_citations(html):
    """In-text citations are author–year ("Finn et al., 2017"): so are the bibliography's labels."""
    page = (html / "book" / "intro.html").read_text()
    labels = re.findall(r'class="label"><span class="fn-bracket">\[</span>([^<]+)<', page)
    assert len(labels) >= 5, labels
    assert all(re.fullmatch(r"[^\d\[\]]+, (19|20)\d\d[a-z]?", unescape_html(l)) for l in labels), labels
    assert "Finn et al., 2017" in labels


def unescape_html(text: str) -> str:
    from html import unescape

    return unescape(text)


def test_every_figure_says_what_it_shows(html):
    """No image's alt text is its (hashed) file name: figures carry their caption as alt text."""
    bad = []
    for name in page_names():
        for alt in re.findall(r'<img[^>]*\balt="([^"]*)"', (html / f"{name}.html").read_text()):
            if not alt.strip() or alt.endswith((".png", ".svg", ".jpg")) or "_images/" in alt:
                bad.append(f"{name}: {alt[:80]!r}")
    assert not bad, "\n".join(bad)
