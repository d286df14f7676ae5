"""README's configuration table names every environment variable galaxy/settings.py reads.

Settings are read in one place, through the env helpers; a variable added there without a row
in the table fails here, so the operators' table cannot fall behind the code.
"""

import re

from tests.servers import ROOT

READ = re.compile(r'\benv(?:_int|_bool|_list|_seconds)?\(\s*"([A-Z][A-Z0-9_]*)"')


def configuration_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Configuration")
    return readme[start:readme.index("\n## ", start + 1)]


def test_every_variable_the_settings_read_is_in_the_configuration_table():
    read = set(READ.findall((ROOT / "galaxy" / "settings.py").read_text()))
    assert len(read) > 30, "the scan found too few variables: has the settings' env helper been renamed?"
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", configuration_section()))
    assert read - documented == set(), "read by galaxy/settings.py but missing from README's Configuration table"
