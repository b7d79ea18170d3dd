# Chinese text uses Chinese punctuation (full-width commas, colons, brackets) on purpose.
# ruff: noqa: RUF001
"""The award agreement as a PDF, English and Simplified Chinese side by side, rendered from the stored terms
(grants/services/agreements.py says why the terms, not the file, are stored).

The text is set in one TrueType font embedded in the file (subset): WenQuanYi Micro Hei by default (Debian's
fonts-wqy-microhei; AGREEMENT_FONT names another), which has both Latin and CJK glyphs. An embedded font shows
the same in every reader; reportlab's built-in CID font (STSong-Light) is not embedded, so a reader without the
Adobe Chinese font pack shows blanks. reportlab writes a ToUnicode map for it, so the text can be extracted and
searched (the tests read it back with pypdf). `invariant` fixes the file's dates and id: the same terms give the
same bytes.
"""

import io
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from grants.money import format_money

FONT = "AgreementFont"


@cache
def _register_font() -> str:
    path = Path(settings.AGREEMENT_FONT)
    if not path.is_file():
        raise ImproperlyConfigured(
            f"The award agreement's CJK font {path} is missing: install Debian's fonts-wqy-microhei "
            "(apt-get install fonts-wqy-microhei) or set AGREEMENT_FONT to a TrueType (.ttf/.ttc) font with "
            "Chinese glyphs."
        )
    pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
    return FONT


def _styles() -> dict[str, ParagraphStyle]:
    font = _register_font()
    # wordWrap="CJK" breaks lines between any two characters, which Chinese needs and English survives.
    base = ParagraphStyle("base", fontName=font, fontSize=9.5, leading=14, wordWrap="CJK")
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=16, leading=22, alignment=1, spaceAfter=2),
        "subtitle": ParagraphStyle(
            "subtitle", parent=base, fontSize=11, leading=15, alignment=1, spaceAfter=10
        ),
        "heading": ParagraphStyle(
            "heading", parent=base, fontSize=11.5, leading=16, spaceBefore=10, spaceAfter=4
        ),
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=11, textColor=colors.grey),
    }


def _en(amount: str | None) -> str:
    return format_money(Decimal(amount), "en") if amount is not None else "no limit"


def _zh(amount: str | None) -> str:
    return format_money(Decimal(amount), "zh-hans") if amount is not None else "不设上限"


def _rate(rate: str | None) -> tuple[str, str]:
    if rate is None:
        return "no limit", "不设上限"
    percent = f"{(Decimal(rate) * 100).normalize():f}%"
    return percent, percent


def _text(text: str, style: ParagraphStyle) -> Paragraph:
    """Plain text (escaped, so a name with "<" or "&" stays text) with its line breaks kept."""
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _pair(en: str, zh: str, style: ParagraphStyle) -> list[Paragraph]:
    return [_text(en, style), _text(zh, style)]


def _report_name(report: dict[str, Any]) -> str:
    kind_en, kind_zh = KIND_LABELS[report["kind"]]
    en = report["name_en"] if report["name_en"] == kind_en else f"{report['name_en']} ({kind_en})"
    zh_name = report["name_zh"] or report["name_en"]
    zh = zh_name if zh_name == kind_zh else f"{zh_name}（{kind_zh}）"
    return f"{en} / {zh}"


def _grid(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    commands: list[tuple[Any, ...]] = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (-1, -1), FONT),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")))
    table.setStyle(TableStyle(commands))
    return table


def _cost_share(terms: dict[str, Any]) -> tuple[str, str]:
    """The subsidy rules that bound this award, leaving out the limits the pool does not set."""
    rules = terms["rules"]
    eligible = terms["project"]["eligible_cost"]
    en: list[str] = []
    zh: list[str] = []
    if rules["rate"] is not None:
        rate_en, rate_zh = _rate(rules["rate"])
        en.append(
            f"the subsidy is at most {rate_en} of the eligible cost of {_en(eligible)}, that is "
            f"{_en(rules['cost_share_limit'])}"
        )
        zh.append(f"补贴不超过可补贴成本 {_zh(eligible)} 的 {rate_zh}，即 {_zh(rules['cost_share_limit'])}")
    if rules["max_per_award"] is not None:
        en.append(f"the pool pays at most {_en(rules['max_per_award'])} per award")
        zh.append(f"本资金池单笔资助上限 {_zh(rules['max_per_award'])}")
    if rules["max_per_institution_year"] is not None:
        en.append(f"at most {_en(rules['max_per_institution_year'])} per institution and fiscal year")
        zh.append(f"每家机构每财政年度上限 {_zh(rules['max_per_institution_year'])}")
    if not en:
        return (
            "Subsidy rules: the pool sets no rate or amount limit.",
            "补贴规则：本资金池未设补贴比例或金额上限。",
        )
    return f"Subsidy rules: {'; '.join(en)}.", f"补贴规则：{'；'.join(zh)}。"


def conditions(terms: dict[str, Any]) -> list[tuple[str, str]]:
    """The conditions of the agreement, each in English and Chinese, with the figures of these terms."""
    title = terms["project"]["title"]
    return [
        (
            f"The subsidy is used only for the project \u201c{title}\u201d as approved, between "
            f"{terms['start_date']} and {terms['end_date']}.",
            f"补贴资金仅用于经批准的项目\u201c{title}\u201d，执行期为 {terms['start_date']} 至 {terms['end_date']}。",
        ),
        _cost_share(terms),
        (
            "Tranches are paid on the schedule of section 3 while the award is active, and none before the "
            "institution has accepted this agreement. A tranche marked as a milestone is paid only after its "
            "report has been accepted by the programme officer.",
            "各期资金在资助有效期内按第 3 节的计划拨付；机构接受本协议前不拨付任何一期。标为里程碑的一期，须待对应报告经"
            "项目主管审核通过后方予拨付。",
        ),
        (
            "The institution submits the progress and financial reports of section 4 by their due dates, in the "
            "portal, with the information each report's form asks for.",
            "机构须在截止日期前通过门户提交第 4 节所列的进展报告和财务报告，并填写各报告表单要求的内容。",
        ),
        (
            "Money used for other purposes, or obtained with false statements, is recovered, and the institution "
            "may be debarred from the city's programmes.",
            "挪用资金或以虚假材料取得资金的，将追回已拨付资金，并可取消该机构申请本市项目的资格。",
        ),
    ]


KIND_LABELS = {"progress": ("Progress report", "进展报告"), "financial": ("Financial report", "财务报告")}


def render_agreement(terms: dict[str, Any], *, digest: str) -> bytes:
    """The agreement as PDF bytes; the same terms give the same bytes."""
    styles = _styles()
    base, heading = styles["base"], styles["heading"]
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Award agreement {terms['reference']}",
        author=terms["agency"]["name_en"],
        invariant=1,
    )
    width = A4[0] - 36 * mm
    half = [width / 2, width / 2]
    agency, institution, programme, pool = (
        terms["agency"],
        terms["institution"],
        terms["programme"],
        terms["pool"],
    )
    story: list[Any] = [
        Paragraph("资助协议 · Award Agreement", styles["title"]),
        Paragraph(escape(f"{terms['reference']} · {terms['issued_on']}"), styles["subtitle"]),
        Paragraph("1. 协议双方 · The parties", heading),
        _grid(
            [
                _pair("Funder (Party A)", "资助方（甲方）", base),
                _pair(
                    f"{agency['name_en']}, {agency['city_en']}\nUnified social credit code: "
                    f"{agency['credit_code'] or 'not recorded'}",
                    f"{agency['name_zh']}（{agency['city_zh']}）\n统一社会信用代码：{agency['credit_code'] or '未登记'}",
                    base,
                ),
                _pair("Recipient (Party B)", "受资助方（乙方）", base),
                _pair(
                    f"{institution['name_en']}\nUnified social credit code: {institution['credit_code']}",
                    f"{institution['name_zh'] or institution['name_en']}\n统一社会信用代码：{institution['credit_code']}",
                    base,
                ),
            ],
            half,
            header=False,
        ),
        Paragraph("2. 资助项目与金额 · Programme, project and amount", heading),
        _grid(
            [
                _pair(
                    f"Programme: {programme['name_en']} ({programme['policy_title'] or '-'})",
                    f"项目计划：{programme['name_zh'] or programme['name_en']}",
                    base,
                ),
                _pair(
                    f"Funding pool: {pool['code']} {pool['name_en']}",
                    f"资金池：{pool['code']} {pool['name_zh'] or pool['name_en']}",
                    base,
                ),
                _pair(
                    f"Project: {terms['project']['title']}", f"项目名称：{terms['project']['title']}", base
                ),
                _pair(
                    f"Amount awarded: {_en(terms['amount'])}",
                    f"资助金额：{_zh(terms['amount'])}",
                    base,
                ),
                _pair(
                    f"Term: {terms['start_date']} to {terms['end_date']} ({terms['duration_years']} year(s))",
                    f"执行期：{terms['start_date']} 至 {terms['end_date']}（{terms['duration_years']} 年）",
                    base,
                ),
            ],
            half,
            header=False,
        ),
        Paragraph("3. 拨付计划 · Tranche schedule", heading),
        _grid(
            [
                [
                    Paragraph(escape(h), base)
                    for h in (
                        "# 期次",
                        "Date 日期",
                        "Fiscal year 财政年度",
                        "Amount 金额",
                        "Milestone 里程碑",
                    )
                ],
                *[
                    [
                        Paragraph(str(t["sequence"]), base),
                        Paragraph(t["scheduled_date"], base),
                        Paragraph(str(t["fiscal_year"]), base),
                        Paragraph(escape(f"{_en(t['amount'])} / {_zh(t['amount'])}"), base),
                        Paragraph("Yes 是" if t["requires_milestone"] else "No 否", base),
                    ]
                    for t in terms["tranches"]
                ],
            ],
            [width * 0.08, width * 0.17, width * 0.15, width * 0.42, width * 0.18],
        ),
        Paragraph("4. 报告义务与里程碑 · Reporting duties and milestones", heading),
    ]
    if terms["reports"]:
        story.append(
            _grid(
                [
                    [
                        Paragraph(escape(h), base)
                        for h in ("Report 报告", "Due 截止日期", "Unlocks tranche 对应拨付")
                    ],
                    *[
                        [
                            _text(_report_name(r), base),
                            Paragraph(r["due_date"], base),
                            Paragraph(f"#{r['tranche']}" if r["tranche"] else "-", base),
                        ]
                        for r in terms["reports"]
                    ],
                ],
                [width * 0.6, width * 0.2, width * 0.2],
            )
        )
    else:
        story += _pair("This pool asks for no scheduled reports.", "本资金池不要求定期报告。", base)
    story.append(Paragraph("5. 协议条款 · Conditions", heading))
    story.append(
        _grid(
            [
                _pair(f"{n}. {en}", f"{n}. {zh}", base)
                for n, (en, zh) in enumerate(conditions(terms), start=1)
            ],
            half,
            header=False,
        )
    )
    story += [
        Spacer(1, 8 * mm),
        Paragraph(
            escape(
                "Party B accepts this agreement in the applicant portal; the acceptance (who, when, from which "
                "address) is recorded in the audit log. / 乙方在申请人门户中接受本协议，接受人、时间和地址记入审计日志。"
            ),
            base,
        ),
        Spacer(1, 4 * mm),
        Paragraph(escape(f"SHA-256 of the terms / 条款摘要: {digest}"), styles["small"]),
    ]
    document.build(story)
    return buffer.getvalue()
