"""The catalog's Chinese full-text index: segmentation, ranking, filters, facets and replacement."""

import pytest

from common.errors import Invalid
from services.catalog.adapters.search import CatalogSearchIndex, query_terms
from services.catalog.domain.entries import Category, ShareMethod, ShareType, UpdateCycle, VersionStatus
from services.catalog.domain.search import Facet, SearchDocument, SearchQuery

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
    assert codes(index, "企业登记") == ["101001/000001"]
    assert codes(index, "社保") == ["102001/000001"]
    # '业登' is a substring of 企业登记 but no word of it
    assert codes(index, "业登") == []


def test_a_compound_word_matches_entries_holding_its_parts(index: CatalogSearchIndex) -> None:
    assert codes(index, "注册登记") == ["101001/000001"]


def test_a_word_in_the_name_ranks_above_the_same_word_in_the_abstract() -> None:
    index = CatalogSearchIndex()
    index.put(doc("101001/000001", "法人基本信息", "含企业的基本信息"))
    index.put(doc("101001/000002", "企业年报信息", "年度报告"))
    assert codes(index, "企业") == ["101001/000002", "101001/000001"]


def test_match_any_ranks_entries_with_more_of_the_words_first(index: CatalogSearchIndex) -> None:
    assert codes(index, "企业 不动产") == []
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
    assert codes(index, "统一社会信用代码") == []
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
