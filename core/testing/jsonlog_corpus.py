"""Lines and the JSON strings moby's jsonlog writer makes of them (Go's escaping rules, written
out by hand): shared by the json-file unit test (our escaper) and the integration test (the
shim's writer)."""

CORPUS = [  # (bytes of a line, the JSON string moby's jsonlog writes: Go's rules, by hand)
    (b'say "hi" \\ back\n', r'"say \"hi\" \\ back\n"'),
    (b"tab\there\rcr\x08\x0c\n", r'"tab\u0009here\rcr\u0008\u000c\n"'),
    (b"\x00\x01\x1b[0m\x7f\n", '"\\u0000\\u0001\\u001b[0m\x7f\\n"'),
    (b"<a href=x>&amp;</a>\n", r'"\u003ca href=x\u003e\u0026amp;\u003c/a\u003e\n"'),
    ("héllo wörld ✓ 🐳\n".encode(), '"héllo wörld ✓ 🐳\\n"'),
    (b"bad \xff\xfe utf8 \xe2\x82 end\n", r'"bad \ufffd\ufffd utf8 \ufffd\ufffd end\n"'),
    (b"overlong \xc0\xaf surrogate \xed\xa0\x80 big \xf4\x90\x80\x80\n",
     r'"overlong \ufffd\ufffd surrogate \ufffd\ufffd\ufffd big \ufffd\ufffd\ufffd\ufffd\n"'),
    ("sep \u2028 para \u2029 ok\n".encode(), r'"sep \u2028 para \u2029 ok\n"'),
    ("replacement \ufffd kept\n".encode(), '"replacement \ufffd kept\\n"'),
    (b"cut at the end \xf0\x9f\x90", r'"cut at the end \ufffd\ufffd\ufffd"'),
]
