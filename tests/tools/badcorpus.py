#!/usr/bin/env python3
# badcorpus.py - writes tests/data/corpus-bad.ndjson (stdout), the bad-input
# corpus that test_limits.sh runs through the supervised pipeline with
# max_line = 16KiB: 28 lines, 9 valid events, 1 blank line and 18 bad lines,
# one of each kind of bad input ingest must reject with its line number.
# The comment beside each line says what it holds; keep the numbers in
# tests/data/README and the test in step when changing it.
import sys

def ev(i, extra=''):
    return ('{"kind":"interaction","user_id":"u-corpus-%d","ts":"2026-11-02T00:00:%02dZ",'
            '"type":"click"%s}' % (i % 5, i, extra))

def nested(n):
    return ('{"kind":"snapshot","user_id":"u-deep","ts":"2026-11-02T00:01:00Z","state":'
            + '{"n":' * n + '1' + '}' * n + '}')

L = [
    b'\xef\xbb\xbf' + ev(1).encode(),                                 # 1 BOM at the start of the file
    ev(2).encode(),                                                   # 2 valid
    b'{"kind":"interaction","user_id":"u1","ts":"2026-11-',           # 3 malformed JSON (truncated)
    ev(4).encode(),                                                   # 4 valid
    ev(5, ',"note":"caf\xc3\x28 \xff\xfe"').encode('latin1'),         # 5 bad UTF-8
    ev(6).encode() + b'\r',                                           # 6 valid, CRLF
    ev(7, ',"q":"cheap\x00flights"').encode(),                        # 7 raw NUL byte
    ev(8).encode(),                                                   # 8 valid
    ev(9, ',"q":"cheap\\u0000flights"').encode(),                     # 9 escaped NUL (\u0000)
    nested(100).encode(),                                             # 10 nested past max_depth (64)
    ev(11).encode(),                                                  # 11 valid
    ev(12, ',"pad":"' + 'x' * 20000 + '"').encode(),                  # 12 longer than max_line
    b'{"kind":"interaction","kind":"trace","user_id":"u1","ts":"2026-11-02T00:00:13Z"}',  # 13 duplicate key
    ev(14).encode() + b'\r',                                          # 14 valid, CRLF
    b'{"kind":"interaction","user_id":42,"ts":"2026-11-02T00:00:15Z"}',    # 15 user_id of the wrong type
    b'{"kind":"interaction","user_id":"u1","ts":"2026-13-45T99:00:00Z"}',  # 16 impossible timestamp
    b'{"kind":"interaction","user_id":"u1","ts":"yesterday"}',        # 17 timestamp not RFC 3339
    b'',                                                              # 18 blank: skipped, not counted
    ev(19).encode(),                                                  # 19 valid
    b'{"kind":42,"user_id":"u1","ts":"2026-11-02T00:00:20Z"}',        # 20 kind of the wrong type
    b'{"kind":"interaction","user_id":"u1","ts":true}',               # 21 ts of the wrong type
    b'[{"kind":"interaction","user_id":"u1"}]',                       # 22 JSON, not an object
    nested(2100).encode(),                                            # 23 nested past jansson's cap (2048)
    b'\xef\xbb\xbf' + ev(24).encode(),                                # 24 BOM mid-stream
    ev(25, ',"device":{"os":"a","os":"b"}').encode(),                 # 25 duplicate key, nested
    ev(26).encode(),                                                  # 26 valid
    b'{"kind":"interaction","user_id":"u1","ts":"2026-11-02T00:00:27Z"} trailing',  # 27 data after the object
    ev(28, ',"text":"\\u00e9t\\u00e9 \xc3\xa9"').encode('latin1'),   # 28 valid: escaped and raw UTF-8
]
sys.stdout.buffer.write(b'\n'.join(L) + b'\n')
