"""The catalog's Chinese full-text index: segmentation, ranking, filters, facets and replacement."""

import pytest

from common.errors import Invalid
from services.catalog.adapters.search import (
    MAX_EXPANSIONS,
    CatalogSearchIndex,
    SynonymList,
    merged_synonyms,
    query_terms,
    simplified,
)
from services.catalog.domain.entries import Category, ShareMethod, ShareType, UpdateCycle, VersionStatus
from services.catalog.domain.search import (
    ONLY_STOP_WORDS,
    Facet,
    SearchDocument,
    SearchQuery,
    Synonyms,
    Viewer,
    filter_value,
    label_of,
)

MARKET = "11360800MB0000001X"
SOCIAL = "11360800MB0000002X"


def doc(code: str, name: str, abstract: str = "", items: tuple[str, ...] = (), **over) -> SearchDocument:
    fields = {
        "resource_code": code,
        "provider_code": MARKET,
        "revision": 1,
        "version": 1,
        "name": name,
        "abstract": abstract,
        "item_names": items,
        "item_descriptions": (),
        "status": VersionStatus.PUBLISHED,
        "category": Category.BASE,
        "share_type": ShareType.CONDITIONAL,
        "share_methods": frozenset({ShareMethod.API}),
        "update_cycle": UpdateCycle.DAILY,
    } | over
    return SearchDocument(**fields)


@pytest.fixture
def index() -> CatalogSearchIndex:
    index = CatalogSearchIndex()
    index.put(doc("101001/000001", "企业登记基本信息", "全市企业注册登记的基本信息", ("统一社会信用代码", "企业名称")))
    index.put(
        doc(
            "102001/000001",
            "社会保险缴费信息",
            "参保人员的社保缴费记录",
            ("公民身份号码", "缴费金额"),
            provider_code=SOCIAL,
            share_methods=frozenset({ShareMethod.FILE_DOWNLOAD, ShareMethod.API}),
            update_cycle=UpdateCycle.MONTHLY,
        )
    )
    index.put(
        doc(
            "201001/000001",
            "不动产登记信息",
            "不动产权利登记簿",
            ("不动产单元号", "权利人"),
            status=VersionStatus.DRAFT,
            category=Category.THEME,
        )
    )
    return index


def codes(index: CatalogSearchIndex, text: str = "", **query) -> list[str]:
    return [h.resource_code for h in index.search(SearchQuery(text, **query)).hits]


def test_words_are_segmented_not_matched_as_substrings(index: CatalogSearchIndex) -> None:
    assert query_terms("企业的登记信息") == ["企业", "登记", "信息"]
    assert codes(index, "企业登记", match_all=True) == ["101001/000001"]
    assert codes(index, "社保") == ["102001/000001"]
    # '业登' is a substring of 企业登记 but no word of it
    assert codes(index, "业登") == []


def test_a_compound_word_matches_entries_holding_its_parts(index: CatalogSearchIndex) -> None:
    assert codes(index, "注册登记", match_all=True) == ["101001/000001"]


def test_a_word_in_the_name_ranks_above_the_same_word_in_the_abstract() -> None:
    index = CatalogSearchIndex()
    index.put(doc("101001/000001", "法人基本信息", "含企业的基本信息"))
    index.put(doc("101001/000002", "企业年报信息", "年度报告"))
    assert codes(index, "企业") == ["101001/000002", "101001/000001"]


def test_match_any_ranks_entries_with_more_of_the_words_first(index: CatalogSearchIndex) -> None:
    assert codes(index, "企业 不动产", match_all=True) == []
    assert codes(index, "企业 登记", match_all=False)[0] == "101001/000001"
    assert set(codes(index, "企业 不动产", match_all=False)) == {"101001/000001", "201001/000001"}


def test_a_resource_code_finds_its_entry(index: CatalogSearchIndex) -> None:
    assert codes(index, "102001/000001") == ["102001/000001"]


def test_filters_combine_and_facets_count_the_alternatives(index: CatalogSearchIndex) -> None:
    result = index.search(SearchQuery("登记", {Facet.STATUS: frozenset({"PUBLISHED"})}))
    assert [h.resource_code for h in result.hits] == ["101001/000001"]
    # the status facet ignores the status filter, so the reader sees what choosing DRAFT would give
    assert result.facets[Facet.STATUS] == {"PUBLISHED": 1, "DRAFT": 1}
    assert result.facets[Facet.CATEGORY] == {"BASE": 1}
    everything = index.search(SearchQuery(""))
    assert everything.total == 3
    assert everything.facets[Facet.SHARE_METHOD] == {"API": 3, "FILE_DOWNLOAD": 1}
    assert everything.facets[Facet.PROVIDER] == {MARKET: 2, SOCIAL: 1}
    assert codes(index, filters={Facet.SHARE_METHOD: frozenset({"FILE_DOWNLOAD"})}) == ["102001/000001"]
    both = {Facet.UPDATE_CYCLE: frozenset({"DAILY"}), Facet.PROVIDER: frozenset({MARKET})}
    assert set(codes(index, filters=both)) == {"101001/000001", "201001/000001"}


def test_a_new_revision_replaces_the_old_and_a_late_old_one_is_ignored(index: CatalogSearchIndex) -> None:
    index.put(doc("101001/000001", "市场主体登记信息", revision=3))
    index.put(doc("101001/000001", "企业登记基本信息", revision=2))
    assert codes(index, "市场主体") == ["101001/000001"]
    assert codes(index, "统一社会信用代码", match_all=True) == []
    assert len(index) == 3


def test_replaced_documents_are_compacted_away() -> None:
    index = CatalogSearchIndex()
    for revision in range(1, 1600):
        index.put(doc("101001/000001", f"企业登记信息{revision}", revision=revision))
    assert len(index._docs) < 1600  # compacted at least once
    assert codes(index, "企业") == ["101001/000001"]


def test_pages_and_bounds() -> None:
    index = CatalogSearchIndex()
    for n in range(1, 31):
        index.put(doc(f"101001/{n:06d}", "企业信息"))
    first, second = codes(index, "企业", limit=20), codes(index, "企业", offset=20, limit=20)
    assert len(first) == 20 and len(second) == 10 and not set(first) & set(second)
    with pytest.raises(Invalid):
        SearchQuery("企业", limit=0)
    with pytest.raises(Invalid):
        SearchQuery("企业" * 101)


def test_scores_stay_positive_when_replaced_versions_outnumber_the_entries() -> None:
    index = CatalogSearchIndex()
    for revision in range(1, 5):
        index.put(doc("101001/000001", "企业登记基本信息", revision=revision))
    [hit] = index.search(SearchQuery("企业登记")).hits
    assert hit.score > 0


# -- finding what people type (issue 14, point 7) -----------------------------------------------------------

HOUSING = "11360800MB0000003X"
POLICE = "11360800MB0000004X"


@pytest.fixture
def written_in_full() -> CatalogSearchIndex:
    """Entries named as the compilation guide writes them, not as people type them."""
    index = CatalogSearchIndex()
    index.put(doc("101001/000001", "企业登记基本信息", "全市企业注册登记的基本信息", ("统一社会信用代码", "企业名称")))
    index.put(doc("102001/000001", "社会保险缴费信息", "参保人员的缴费记录", ("公民身份号码", "缴费金额")))
    index.put(doc("102002/000001", "医疗保险参保信息", "职工和城乡居民参保记录", ("姓名", "参保日期")))
    index.put(
        doc("103001/000001", "不动产登记信息", "不动产权利登记簿", ("不动产单元号", "权利人"), provider_code=HOUSING)
    )
    index.put(doc("104001/000001", "户籍人口基本信息", "常住人口登记", ("公民身份号码", "姓名"), provider_code=POLICE))
    return index


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("社保", {"102001/000001"}),
        ("医保", {"102002/000001"}),
        ("房产", {"103001/000001"}),
        ("户口", {"104001/000001"}),
        ("身份证", {"102001/000001", "104001/000001"}),
        ("社会保险", {"102001/000001"}),
    ],
)
def test_abbreviations_and_synonyms_find_entries_written_in_full(
    written_in_full: CatalogSearchIndex, typed: str, found: set[str]
) -> None:
    result = written_in_full.search(SearchQuery(typed))
    assert {h.resource_code for h in result.hits} == found
    assert result.expanded[typed]  # the reader is told which other words were searched


def test_a_word_written_in_full_finds_the_abbreviation_too() -> None:
    index = CatalogSearchIndex()
    index.put(doc("102001/000001", "社保卡发放信息"))
    assert codes(index, "社会保险") == ["102001/000001"]


def test_traditional_characters_are_read_as_simplified(written_in_full: CatalogSearchIndex) -> None:
    assert simplified("企業登記") == "企业登记"
    assert codes(written_in_full, "企業")[0] == "101001/000001"
    assert codes(written_in_full, "登記") and set(codes(written_in_full, "登記")) == set(codes(written_in_full, "登记"))
    assert codes(written_in_full, "企業登記", match_all=True) == ["101001/000001"]


def test_pinyin_and_its_initials_find_the_words_they_spell(written_in_full: CatalogSearchIndex) -> None:
    assert codes(written_in_full, "qiye") == ["101001/000001"]
    assert codes(written_in_full, "QiYe") == ["101001/000001"]
    assert codes(written_in_full, "budongchan") == ["103001/000001"]
    assert codes(written_in_full, "bdc") == ["103001/000001"]
    # pinyin typed without spaces is read as the words it spells
    result = written_in_full.search(SearchQuery("qiyedengji", match_all=True))
    assert result.terms == ("qiye", "dengji") and [h.resource_code for h in result.hits] == ["101001/000001"]
    assert codes(written_in_full, "xyz") == []


def test_the_beginning_of_a_word_finds_the_longer_words(written_in_full: CatalogSearchIndex) -> None:
    assert codes(written_in_full, "不动") == ["103001/000001"]
    written_in_full.put(doc("105001/000001", "营业执照信息", provider_code=SOCIAL))
    result = written_in_full.search(SearchQuery("营业执"))  # segmented 营业 / 执
    assert result.terms == ("营业执",) and "营业执照" in result.expanded["营业执"]
    assert [h.resource_code for h in result.hits] == ["105001/000001"]
    assert codes(written_in_full, "缴费金") == ["102001/000001"]
    assert codes(written_in_full, "业登") == []  # the inside of a word is not its beginning


def test_any_word_will_do_by_default_and_more_words_rank_first(written_in_full: CatalogSearchIndex) -> None:
    result = written_in_full.search(SearchQuery("企业登记信息查询"))
    assert result.terms == ("企业", "登记", "信息", "查询")
    assert result.total == 5  # every entry holds 信息; none holds 查询
    assert result.hits[0].resource_code == "101001/000001" and result.hits[0].matched == 3
    assert [h.matched for h in result.hits] == sorted((h.matched for h in result.hits), reverse=True)
    assert written_in_full.search(SearchQuery("企业登记信息查询", match_all=True)).total == 0


def test_more_words_outrank_a_higher_score_on_fewer() -> None:
    index = CatalogSearchIndex()
    for n in range(3, 13):
        index.put(doc(f"101001/{n:06d}", "企业年报", "企业"))  # 企业 is common, 林权 rare
    index.put(doc("101001/000001", "林权登记信息"))  # the rare word, in the name: the higher score
    index.put(doc("101001/000002", "资源信息", item_descriptions=("林权 企业",)))  # both words, weakly
    [first, second] = index.search(SearchQuery("林权 企业", limit=2)).hits
    assert (first.resource_code, first.matched) == ("101001/000002", 2) and first.score < second.score


def test_a_query_of_stop_words_only_finds_nothing_and_says_why(written_in_full: CatalogSearchIndex) -> None:
    result = written_in_full.search(SearchQuery("的 和 及"))
    assert result.total == 0 and result.hits == () and result.note == ONLY_STOP_WORDS
    assert written_in_full.search(SearchQuery("")).total == 5  # no words at all: browsing by filters


def test_others_see_published_entries_only_and_a_department_its_own() -> None:
    index = CatalogSearchIndex()
    index.put(doc("101001/000001", "企业登记基本信息"))
    index.put(doc("101001/000002", "企业年报信息", status=VersionStatus.DRAFT))
    index.put(doc("101001/000003", "企业注销信息", status=VersionStatus.WITHDRAWN))
    index.put(doc("102001/000001", "企业参保信息", status=VersionStatus.SUBMITTED, provider_code=SOCIAL))

    def seen(viewer: Viewer, **query) -> set[str]:
        return {h.resource_code for h in index.search(SearchQuery("企业", viewer=viewer, **query)).hits}

    assert seen(Viewer(SOCIAL)) == {"101001/000001", "102001/000001"}
    assert seen(Viewer(MARKET)) == {"101001/000001", "101001/000002", "101001/000003"}
    assert seen(Viewer(HOUSING)) == {"101001/000001"}
    assert seen(Viewer(HOUSING), filters={Facet.STATUS: frozenset({"DRAFT"})}) == set()
    facets = index.search(SearchQuery("企业", viewer=Viewer(HOUSING))).facets
    assert facets[Facet.STATUS] == {"PUBLISHED": 1}  # counts do not betray the hidden drafts
    # oversight sees other departments' unpublished entries when it asks for them
    office = Viewer(HOUSING, oversight=True)
    assert seen(office) == {"101001/000001"}
    assert seen(office, filters={Facet.STATUS: frozenset({"DRAFT", "SUBMITTED"})}) == {"101001/000002", "102001/000001"}


def test_expansions_come_only_from_entries_the_reader_sees() -> None:
    index = CatalogSearchIndex(Synonyms())
    index.put(doc("101001/000001", "企业登记基本信息"))
    index.put(doc("301001/000001", "拆迁户补偿名册", status=VersionStatus.DRAFT, provider_code=HOUSING))

    def searched(viewer: Viewer, text: str) -> tuple[int, dict[str, tuple[str, ...]], tuple[str, ...]]:
        result = index.search(SearchQuery(text, viewer=viewer))
        return result.total, result.expanded, result.terms

    for typed in ("cq", "chaiqian"):  # initials, pinyin
        total, expanded, _ = searched(Viewer(MARKET), typed)
        assert total == 0 and expanded == {}, (typed, expanded)
        total, expanded, _ = searched(Viewer(HOUSING), typed)
        assert total == 1 and "拆迁" in expanded[typed], (typed, expanded)
    assert searched(Viewer(MARKET), "拆迁") == (0, {}, ("拆迁",))  # not the longer word 拆迁户 it begins
    assert searched(Viewer(MARKET), "chaiqianbuchang")[2] == ("chaiqianbuchang",)  # not split by hidden words
    assert searched(Viewer(HOUSING), "chaiqianbuchang")[2] == ("chaiqian", "buchang")
    assert searched(Viewer(MARKET), "qiye")[1] == {"qiye": ("企业",)}  # what the reader sees still expands


def test_an_alias_of_several_words_expands_a_search() -> None:
    index = CatalogSearchIndex(Synonyms([["统一社会信用代码", "企业组织机构代码"]]))
    index.put(doc("101002/000001", "纳税人登记信息", items=("统一社会信用代码", "纳税人名称"), provider_code=SOCIAL))
    index.put(doc("101001/000001", "企业名录", items=("企业名称",)))
    result = index.search(SearchQuery("企业组织机构代码", match_all=True))
    assert [h.resource_code for h in result.hits] == ["101002/000001"]
    assert result.terms == ("企业组织机构代码",) and result.expanded == {"企业组织机构代码": ("统一社会信用代码",)}
    # the phrase among other words; typed in traditional characters
    assert codes(index, "納稅人 企業組織機構代碼", match_all=True) == ["101002/000001"]


def test_filters_take_chinese_labels_and_refuse_others_naming_the_choices() -> None:
    assert filter_value(Facet.CATEGORY, "基础") == "BASE"
    assert filter_value(Facet.CATEGORY, "base") == "BASE"
    assert filter_value(Facet.SHARE_TYPE, "无条件") == "UNCONDITIONAL"
    assert filter_value(Facet.SHARE_METHOD, "接口") == "API"
    assert filter_value(Facet.UPDATE_CYCLE, "每月") == "MONTHLY"
    assert filter_value(Facet.STATUS, "已发布") == "PUBLISHED"
    assert label_of(Facet.CATEGORY, "THEME") == "主题" and label_of(Facet.PROVIDER, MARKET) == ""
    with pytest.raises(Invalid) as refused:
        filter_value(Facet.CATEGORY, "基本")
    assert refused.value.field == "category" and "基础（BASE）" in refused.value.rule


def test_synonyms_of_several_sources_merge_where_they_share_a_word() -> None:
    listed = SynonymList("# 说明\n社保 = 社会保险\n\n户口 户籍\n").alias_groups()
    dictionary = [["公民身份号码", "身份证号"], ["社会保险", "社会保障"]]  # as the data-element dictionary gives them
    synonyms = merged_synonyms(listed, dictionary)
    assert synonyms.of_word("社保") == {"社会保险", "社会保障"}
    assert synonyms.of_word("身份证号") == {"公民身份号码"}
    assert synonyms.of_word("户籍") == {"户口"} and synonyms.of_word("企业") == frozenset()
    assert len(synonyms) == 3


def test_the_index_searches_with_new_synonyms_once_given() -> None:
    index = CatalogSearchIndex(Synonyms())
    index.put(doc("101001/000001", "经营主体登记信息"))
    assert codes(index, "市场主体") == []
    index.use_synonyms(Synonyms([["市场主体", "经营主体"]]))
    assert codes(index, "市场主体") == ["101001/000001"]


def test_the_maintained_list_holds_the_abbreviations_people_type() -> None:
    synonyms = merged_synonyms(SynonymList().alias_groups())
    assert "社会保险" in synonyms.of_word("社保")
    assert "医疗保险" in synonyms.of_word("医保")
    assert {"不动产", "房屋"} <= synonyms.of_word("房产")
    assert "户籍" in synonyms.of_word("户口")
    assert "公民身份号码" in synonyms.of_word("身份证")


async def test_department_names_are_read_again_when_old_or_when_one_is_missing() -> None:
    from services.catalog.adapters.mongo import CachedDepartmentNames

    class Stored:
        def __init__(self) -> None:
            self.names = {MARKET: "吉安市市场监督管理局"}
            self.reads = 0

        async def department_names(self) -> dict[str, str]:
            self.reads += 1
            return dict(self.names)

    stored, now = Stored(), [100.0]
    names = CachedDepartmentNames(stored, max_age=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert await names.of([MARKET]) == {MARKET: "吉安市市场监督管理局"} and stored.reads == 1
    stored.names[SOCIAL] = "吉安市人力资源和社会保障局"
    assert SOCIAL not in await names.of([MARKET, SOCIAL]) and stored.reads == 1  # read less than a second ago
    now[0] += 2
    assert (await names.of([SOCIAL]))[SOCIAL] == "吉安市人力资源和社会保障局" and stored.reads == 2
    now[0] += 30
    await names.of([MARKET, SOCIAL])
    assert stored.reads == 2  # all known, not yet old
    now[0] += 31
    await names.of([MARKET])
    assert stored.reads == 3


def test_a_word_with_many_synonyms_searches_at_most_max_expansions_of_them() -> None:
    many = ["市场主体", *(f"经营主体{n:03d}" for n in range(100))]
    index = CatalogSearchIndex(Synonyms([many]))
    index.put(doc("101001/000001", "经营主体登记信息"))
    result = index.search(SearchQuery("市场主体"))
    assert len(result.expanded["市场主体"]) == MAX_EXPANSIONS
