from c64_pipeline.text_sources import decode_bytes, html_to_text, read_text_pages, split_pages


def test_latin1_and_crlf_are_read():
    assert decode_bytes("Colour RAM \xb7 $D800\r\nnext".encode("latin-1")) == "Colour RAM \xb7 $D800\nnext"


def test_html_tables_become_rows_and_scripts_vanish():
    text = html_to_text(
        "<html><head><title>x</title><script>alert(1)</script></head><body><h1>VIC-II</h1>"
        "<table><tr><th>Address</th><th>Use</th></tr><tr><td>$D020</td><td>Border colour</td></tr></table></body></html>"
    )
    assert "alert" not in text and "VIC-II" in text
    assert "$D020 | Border colour" in text.splitlines()


def test_pages_by_form_feed_or_line_count(tmp_path):
    assert split_pages("a\fb\fc") == ["a", "b", "c"]
    assert len(split_pages("\n".join(str(i) for i in range(200)), lines_per_page=80)) == 3
    path = tmp_path / "ref.md"
    path.write_text("# KERNAL\n\nCHROUT at $FFD2 prints a character.\n")
    assert read_text_pages(path, "md")[0].startswith("# KERNAL")
