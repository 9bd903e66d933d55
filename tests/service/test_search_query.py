"""How a search query is split and matched (``chat.service.search``), without a database."""
from __future__ import annotations

import json

import pytest

from chat.errors import BadRequest
from chat.service.search import highlights, matches, parse_query


def needles(q: str) -> list[tuple[list[str], bool]]:
    return [(n["pieces"], n["word"]) for n in parse_query(q)]


def test_terms_phrases_and_unbalanced_quotes():
    assert needles('alpha "deploy  now" 周五') == [(["alpha"], True), (["deploy", "now"], True),
                                                  (["周五"], False)]
    assert needles('say "hi') == [(["say"], True), (['"hi'], False)]
    assert needles('""') == [(['""'], False)]
    assert needles("Demo demo DEMO") == [(["Demo"], True)]


@pytest.mark.parametrize("q", ["", "  ", "\u3000\n", "x" * 201, None, 5])
def test_bad_queries(q):
    with pytest.raises(BadRequest):
        parse_query(q)


def test_latin_prefix_cjk_anywhere_and_phrases():
    spec = json.dumps(parse_query("deplo"))
    assert matches("The Deployment", spec) and matches("中文deploy", spec)
    assert not matches("redeploy", spec) and not matches("", spec)
    assert matches("早上八点，地铁站见", json.dumps(parse_query("地铁")))
    phrase = json.dumps(parse_query('"deploy now"'))
    assert matches("deploy \n now", phrase) and not matches("now deploy", phrase)


def test_highlights_are_code_point_offsets_merged_where_they_touch():
    assert highlights("早上八点，地铁站见", parse_query("地铁")) == [[5, 7]]
    assert highlights("😀 Deployment deploy", parse_query("DEPLO")) == [[2, 7], [13, 18]]
    assert highlights("aaa", parse_query("aa")) == [[0, 2]]  # only word starts count
    assert highlights("周五周五", parse_query("周五 五周")) == [[0, 4]]
