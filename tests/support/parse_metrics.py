"""Parses exposition text on stdin with prometheus_client's reference parsers.

`openmetrics` uses the strict OpenMetrics 1.0 parser (it refuses a missing `# EOF`, bad
escapes, counters without `_total`, duplicate families); `prometheus` uses the classic text
format 0.0.4 parser. Prints the families as JSON: name -> {type, samples: [[name, labels,
value]]}; a parse error exits 1 with the parser's message on stderr.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_open
from prometheus_client.parser import text_string_to_metric_families as parse_classic


def main():
    text = sys.stdin.read()
    parse = parse_open if sys.argv[1] == "openmetrics" else parse_classic
    try:
        families = {
            f.name: {
                "type": f.type,
                "help": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples],
            }
            for f in parse(text)
        }
    except Exception as error:  # the parser's own message is what the test shows
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(families))


if __name__ == "__main__":
    main()
