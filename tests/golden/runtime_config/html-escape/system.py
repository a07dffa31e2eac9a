"""Characters Go's encoder escapes: ``<``, ``>``, ``&`` (HTML-safe escaping) and U+2028/U+2029.

Other non-ASCII text (é, ☕) is written as UTF-8; quotes, backslashes and tabs use the usual
JSON escapes. Covers env, args from the image, annotations (keys sorted) and hostname.
Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(
            name="escaper",
            image="example.org/app:1",
            env=[
                "GREETING=<b>hello</b> & bye",
                'QUOTE=say "hi"',
                "PATH_WIN=C:\\dir",
                "SEP=a\u2028b\u2029c",
                "ACCENT=café ☕",
                "TAB=a\tb",
            ],
            hostname="a&b",
            annotations={"z<": "1", "html": "<tag attr='x'>&amp;</tag>"},
        )
    ]
)
target = ("onboot", 0)
