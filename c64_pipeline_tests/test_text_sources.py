import random

import pytest

from c64_pipeline.ingest.documents import DocumentRejected, inspect_document
from c64_pipeline.ingest.extraction import ExtractionSettings, extract_document
from c64_pipeline.ingest.text_sources import decode_bytes, detect_encoding, html_to_text, read_text_pages, split_pages

REFERENCE = "CHROUT  $FFD2  Output a character\nColour RAM \xb7 $D800 \u2013 $DBFF\n"


def test_latin1_and_crlf_are_read():
    assert decode_bytes("Colour RAM \xb7 $D800\r\nnext".encode("latin-1")) == "Colour RAM \xb7 $D800\nnext"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8", "cp1252"])
def test_text_file_is_decoded_by_bom_or_detection_without_nuls(encoding):
    text = decode_bytes(REFERENCE.encode(encoding))
    assert text == REFERENCE and "\x00" not in text and "\ufeff" not in text


def test_bomless_utf16_is_told_apart_by_its_nul_pattern():
    assert detect_encoding(REFERENCE.encode("utf-16-le")) == "utf-16-le"
    assert detect_encoding(REFERENCE.encode("utf-16-be")) == "utf-16-be"
    assert detect_encoding(REFERENCE.encode("utf-8")) == "utf-8"


def test_utf16_text_file_gives_clean_pages(tmp_path):
    path = tmp_path / "kernal.txt"
    path.write_bytes(REFERENCE.encode("utf-16-le"))  # no BOM
    (page,) = extract_document("kernal-txt", path, "txt", ExtractionSettings())
    assert page.text.splitlines() == REFERENCE.splitlines()


def test_random_bytes_named_txt_are_rejected_with_the_reason(tmp_path):
    path = tmp_path / "dump.txt"
    path.write_bytes(random.Random(8).randbytes(200_000))
    with pytest.raises(DocumentRejected, match=r"dump\.txt: binary content, not text"):
        read_text_pages(path, "txt")
    record = inspect_document("dump-txt", path)
    assert record.status == "rejected" and record.error.startswith("dump.txt: binary content")


def test_text_with_embedded_nuls_is_rejected(tmp_path):
    path = tmp_path / "image.md"
    path.write_bytes(b"# Title\n" + b"\x00\x01\x02\x03PNG" * 50)
    with pytest.raises(DocumentRejected, match=r"image\.md: binary content"):
        read_text_pages(path, "md")


def test_html_tables_become_rows_and_scripts_vanish():
    text = html_to_text(
        "<html><head><title>x</title><script>alert(1)</script></head><body><h1>VIC-II</h1>"
        "<table><tr><th>Address</th><th>Use</th></tr><tr><td>$D020</td><td>Border colour</td></tr></table></body></html>"
    )
    assert "alert" not in text and "VIC-II" in text
    assert "$D020 | Border colour" in text.splitlines()


def test_html5_page_without_closing_head_is_read(tmp_path):
    path = tmp_path / "vic.html"
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>VIC-II</title>"
        "<p>The border colour register is $D020 (53280).<p>The background colour is $D021."
    )
    assert "x" not in html_to_text("<head><title>x</title><style>p{}</style>")
    (page,) = extract_document("vic-html", path, "html", ExtractionSettings())
    assert page.text.splitlines() == ["The border colour register is $D020 (53280).", "The background colour is $D021."]


def test_html_entities_are_unescaped_once():
    assert html_to_text("<p>&amp;lt;tag&amp;gt; and &lt;b&gt; and &#36;D020</p>") == "&lt;tag&gt; and <b> and $D020\n"


def test_pages_by_form_feed_or_line_count(tmp_path):
    assert split_pages("a\fb\fc") == ["a", "b", "c"]
    assert len(split_pages("\n".join(str(i) for i in range(200)), lines_per_page=80)) == 3
    path = tmp_path / "ref.md"
    path.write_text("# KERNAL\n\nCHROUT at $FFD2 prints a character.\n")
    assert read_text_pages(path, "md")[0].startswith("# KERNAL")


def test_line_count_that_is_a_multiple_of_the_page_size_gives_no_empty_page(tmp_path):
    lines = [f"{i:04d} POKE 53280,{i % 16} sets the border colour" for i in range(160)]
    assert split_pages("\n".join(lines) + "\n", lines_per_page=80) == ["\n".join(lines[:80]), "\n".join(lines[80:])]
    assert split_pages("page one\fpage two\f\n") == ["page one", "page two"]
    path = tmp_path / "border.txt"
    path.write_text("\n".join(f"{i:04d} POKE 53280,{i % 16} sets the border colour" for i in range(320)) + "\n")
    pages = extract_document("border-txt", path, "txt", ExtractionSettings())
    assert len(pages) == 4 and all(p.method == "text_layer" for p in pages)


@pytest.mark.timeout(60)
def test_html_of_a_megabyte_of_unclosed_tags_is_read_in_one_pass():
    """The standard library's parser rescans from every unclosed `<` (hours for a hostile file near the size limit);
    such a `<` is text, and the markup is read in one pass."""
    from c64_pipeline.ingest.text_sources import defuse_unclosed_tags, html_to_text

    text = html_to_text("<p>" + "<a" * 500_000 + "</p>")
    assert text.startswith("<a<a") and len(text.strip()) == 1_000_000
    # well-formed markup and comments (with tags inside) are left as they are
    markup = "<p>a &lt; b</p><!-- <section> --><p>if a<b</p>"
    assert defuse_unclosed_tags(markup) == markup.replace("a<b", "a&lt;b")
    assert html_to_text(markup) == "a < b\n\nif a<b\n"
