"""One Chinese term per concept (docs/glossary.md): both catalogues use the glossary's term wherever the English
has it, and never a rejected variant."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
CATALOGUES = (
    ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po",
    ROOT / "grants" / "portal" / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po",
)


def glossary() -> list[tuple[str, str, list[str]]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("English", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], cells[1], [v.strip() for v in cells[2].split(",") if v.strip()]))
    return rows


def entries(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) of the catalogue's live entries (plural forms: every msgstr joined)."""
    found = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if block.lstrip().startswith("#~"):
            continue
        msgid = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        msgstrs = re.findall(r'^msgstr(?:\[\d\])? ((?:".*"\n?)+)', block, re.M)
        if msgid and msgstrs:

            def text(quoted: str) -> str:
                return "".join(re.findall(r'"(.*)"', quoted))

            if text(msgid.group(1)):
                found.append((text(msgid.group(1)), " ".join(text(s) for s in msgstrs)))
    return found


def pattern(term: str) -> re.Pattern[str]:
    """The term as a word of its own: "fiscal-year" is "fiscal year", "de-committed" is not "committed"."""
    words = r"[\s-]+".join(re.escape(w) for w in term.split())
    return re.compile(rf"(?<![\w-]){words}(?:s|es)?\b", re.I)


def misses(msgid: str, msgstr: str, terms: list[tuple[str, str, list[str]]]) -> list[str]:
    """The glossary terms in the English whose Chinese term the translation lacks; the longest term wins where
    terms overlap."""
    text = re.sub(r"%\(\w+\)[sd]", " ", msgid)  # a placeholder such as %(programme)s is not the word
    missing = []
    for english, chinese, _rejected in sorted(terms, key=lambda t: -len(t[0])):
        if pattern(english).search(text):
            if chinese not in msgstr:
                missing.append(f"{english} → {chinese}")
            text = pattern(english).sub(" ", text)
    return missing


def test_the_glossary_has_the_concepts_people_met_twice():
    terms = {english: chinese for english, chinese, _rejected in glossary()}
    assert terms["eligible project cost"] == "可补贴成本"
    assert terms["fiscal year"] == "财政年度"
    assert len(terms) >= 20


def test_the_catalogues_use_the_glossary_terms():
    terms = glossary()
    problems = []
    for catalogue in CATALOGUES:
        for msgid, msgstr in entries(catalogue):
            for miss in misses(msgid, msgstr, terms):
                problems.append(f"{catalogue.relative_to(ROOT)}: {msgid!r} = {msgstr!r} lacks {miss}")
    assert problems == []


def test_no_translation_uses_a_rejected_variant():
    rejected = {variant: chinese for _english, chinese, variants in glossary() for variant in variants}
    problems = [
        f"{catalogue.relative_to(ROOT)}: {msgstr!r} uses {variant}, not {chinese}"
        for catalogue in CATALOGUES
        for _msgid, msgstr in entries(catalogue)
        for variant, chinese in rejected.items()
        if variant in msgstr
    ]
    assert problems == []


def test_the_chinese_e_mails_use_no_rejected_variant():
    rejected = {variant for _english, _chinese, variants in glossary() for variant in variants}
    templates = sorted((ROOT / "templates" / "notifications" / "zh_hans").rglob("*.*"))
    problems = [
        f"{path.relative_to(ROOT)} uses {variant}"
        for path in templates
        for variant in rejected
        if variant in path.read_text(encoding="utf-8")
    ]
    assert problems == []


def test_the_check_itself_sees_a_wrong_term():
    terms = glossary()
    assert misses("eligible project cost", "项目合规成本", terms) == ["eligible project cost → 可补贴成本"]
    assert misses("programme officer", "项目主管", terms) == []  # the longer term covers "programme"
    assert misses("the fiscal-year allotment", "财政年度额度", terms) == []
    assert misses("de-committed", "撤销承诺", terms) == []  # another concept
    assert misses("Fiscal year %(year)d of %(programme)s", "%(programme)s 的 %(year)d 财政年度", terms) == []
