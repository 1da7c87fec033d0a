"""Kafka's ``sasl.jaas.config``: the options of one JAAS login module line (Strimzi's
``KafkaUser`` Secret holds SCRAM credentials only in this form)."""

from __future__ import annotations

import re

_JAAS = re.compile(
    r"^\s*(?P<module>[\w.$]+)\s+(?:required|requisite|sufficient|optional)"
    r"(?P<options>(?:\s+\w+\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^\s;\"]+))*)\s*;\s*$",
    re.DOTALL,
)
_JAAS_OPTION = re.compile(r"(\w+)\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^\s;\"]+))")


def jaas_options(line: str) -> dict[str, str]:
    """The options of one JAAS login module line, as Kafka's ``sasl.jaas.config`` holds it:
    ``<LoginModule> required username="alice" password="...";`` (quoted values may escape
    ``\\"`` and ``\\\\``). ValueError names what is wrong, never the values."""
    match = _JAAS.match(line)
    if match is None:
        raise ValueError(
            'is not one JAAS line \'<LoginModule> required username="..." password="...";\''
        )
    options = {}
    for key, quoted, bare in _JAAS_OPTION.findall(match.group("options")):
        options[key] = re.sub(r"\\(.)", r"\1", quoted) if bare == "" else bare
    return options
