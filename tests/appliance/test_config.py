"""Device configuration: where it lives, the file, the environment overrides, and every refusal."""

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from appliance.config import KNOWN_SCOPES, ConfigError, DeviceConfig, default_data_dir, load_config
from appliance.verdict import DeviceProfile

PIN_HASH = generate_password_hash("4711")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "gatecheck.toml").write_text(text, encoding="utf-8")
    (tmp_path / "gatecheck.toml").chmod(0o600)
    return tmp_path


def load(tmp_path: Path, text: str | None = None, **env: str) -> DeviceConfig:
    if text is not None:
        write(tmp_path, text)
    return load_config(tmp_path, env=env)


def refusal(tmp_path: Path, text: str | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, **env)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- where the data dir is --------------------------------------------------


def test_data_dir_comes_from_gatecheck_home_first():
    env = {"GATECHECK_HOME": "/srv/gc", "XDG_DATA_HOME": "/x", "HOME": "/home/a"}
    assert default_data_dir(env) == Path("/srv/gc")


def test_data_dir_falls_back_to_xdg_data_home():
    assert default_data_dir({"XDG_DATA_HOME": "/x", "HOME": "/home/a"}) == Path("/x/gatecheck")


def test_data_dir_falls_back_to_local_share_in_home():
    assert default_data_dir({"HOME": "/home/a"}) == Path("/home/a/.local/share/gatecheck")


def test_relative_or_empty_xdg_data_home_is_ignored_as_the_xdg_spec_says():
    env = {"XDG_DATA_HOME": "relative/dir", "GATECHECK_HOME": "", "HOME": "/home/a"}
    assert default_data_dir(env) == Path("/home/a/.local/share/gatecheck")


def test_load_config_uses_the_default_data_dir_when_none_is_given(tmp_path):
    config = load_config(env={"GATECHECK_HOME": str(tmp_path)})
    assert config.data_dir == tmp_path
    assert config.config_path == tmp_path / "gatecheck.toml"


# --- defaults and the file --------------------------------------------------


def test_missing_file_gives_the_airline_counter_defaults(tmp_path):
    config = load(tmp_path)
    assert config == DeviceConfig(data_dir=tmp_path)
    assert config.scopes == frozenset({"air_travel"})
    assert config.max_age == timedelta(hours=24)
    assert config.fail_closed is True
    assert (config.journal_clear_days, config.journal_match_days) == (30, 365)
    assert (config.host, config.port) == ("127.0.0.1", 8470)
    assert dict(config.operators) == {}
    assert config.reporters == frozenset()  # nobody may flag until granted


def test_file_sets_every_key(tmp_path):
    config = load(tmp_path, f"""
scopes = ["star_hotel", "air_travel"]
max_age_hours = 6.5
fail_closed = false
journal_clear_days = 7
journal_match_days = 730
host = "0.0.0.0"
port = 9000
reporters = ["agent-17"]

[operators]
agent-17 = "{PIN_HASH}"
""")
    assert config.scopes == frozenset({"air_travel", "star_hotel"})
    assert config.max_age == timedelta(hours=6, minutes=30)
    assert config.fail_closed is False
    assert (config.journal_clear_days, config.journal_match_days) == (7, 730)
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert dict(config.operators) == {"agent-17": PIN_HASH}
    assert config.reporters == frozenset({"agent-17"})


def test_profile_carries_scopes_max_age_and_policy(tmp_path):
    config = load(tmp_path, 'scopes = ["star_hotel"]\nmax_age_hours = 2\nfail_closed = false\n')
    assert config.profile() == DeviceProfile(
        scopes=frozenset({"star_hotel"}), max_age=timedelta(hours=2), fail_closed=False)


def test_example_in_docs_configuration_loads(tmp_path):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load(tmp_path, example)
    assert config.scopes == frozenset({"air_travel"}) and "agent-17" in config.operators
    assert config.reporters == frozenset({"agent-17"})


# --- environment overrides --------------------------------------------------


def test_environment_overrides_the_file(tmp_path):
    config = load(tmp_path, 'scopes = ["air_travel"]\nport = 9000\nfail_closed = true\n',
                  GATECHECK_SCOPES="air_travel, star_hotel", GATECHECK_MAX_AGE_HOURS="48",
                  GATECHECK_FAIL_CLOSED="no", GATECHECK_PORT="9100", GATECHECK_HOST="::1",
                  GATECHECK_JOURNAL_CLEAR_DAYS="1", GATECHECK_JOURNAL_MATCH_DAYS="90")
    assert config.scopes == frozenset({"air_travel", "star_hotel"})
    assert config.max_age == timedelta(hours=48)
    assert config.fail_closed is False
    assert (config.host, config.port) == ("::1", 9100)
    assert (config.journal_clear_days, config.journal_match_days) == (1, 90)


@pytest.mark.parametrize(("word", "value"), [("1", True), ("TRUE", True), ("on", True),
                                             ("0", False), ("False", False), ("off", False)])
def test_fail_closed_accepts_the_usual_boolean_words_from_the_environment(tmp_path, word, value):
    assert load(tmp_path, GATECHECK_FAIL_CLOSED=word).fail_closed is value


def test_unrelated_gatecheck_variables_are_left_to_their_owners(tmp_path):
    assert load(tmp_path, GATECHECK_REGISTRY="x", GATECHECK_HOME="/elsewhere").data_dir == tmp_path


# --- refusals: one line naming the key --------------------------------------


def test_non_numeric_max_age_is_refused_naming_the_key(tmp_path):
    assert refusal(tmp_path, 'max_age_hours = "abc"\n') == (
        "gatecheck.toml: max_age_hours must be a positive number, got 'abc'")


def test_bad_environment_value_is_refused_naming_the_variable(tmp_path):
    assert refusal(tmp_path, GATECHECK_MAX_AGE_HOURS="abc") == (
        "environment: GATECHECK_MAX_AGE_HOURS must be a positive number, got 'abc'")


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "true"])
def test_max_age_must_be_positive_and_finite(tmp_path, value):
    assert "max_age_hours must be a positive number" in refusal(tmp_path, f"max_age_hours = {value}\n")


def test_unknown_scope_is_refused_naming_it(tmp_path):
    message = refusal(tmp_path, 'scopes = ["air_travel", "casino"]\n')
    assert message == "gatecheck.toml: scopes has unknown scope 'casino' (known: air_travel, star_hotel)"


def test_unknown_scope_in_the_environment_is_refused_naming_it(tmp_path):
    assert "unknown scope 'hotel'" in refusal(tmp_path, GATECHECK_SCOPES="hotel")


def test_empty_scopes_are_refused(tmp_path):
    assert "scopes must name at least one scope" in refusal(tmp_path, "scopes = []\n")
    message = refusal(tmp_path / "none", GATECHECK_SCOPES=" , ")
    assert "GATECHECK_SCOPES must name at least one scope" in message


def test_scopes_must_be_a_list_of_names(tmp_path):
    assert "scopes must be a list of scope names" in refusal(tmp_path, "scopes = 3\n")


def test_misspelt_key_is_refused_rather_than_ignored(tmp_path):
    message = refusal(tmp_path, "fail_close = false\n")
    assert message.startswith("gatecheck.toml: fail_close is not a setting (known: ")


@pytest.mark.parametrize("value", ["0", "65536", "80.5", '"http"', "true"])
def test_port_must_be_a_port_number(tmp_path, value):
    assert "port must be a port number from 1 to 65535" in refusal(tmp_path, f"port = {value}\n")


def test_fail_closed_must_be_a_boolean(tmp_path):
    assert refusal(tmp_path, 'fail_closed = "maybe"\n') == (
        "gatecheck.toml: fail_closed must be true or false, got 'maybe'")


@pytest.mark.parametrize("key", ["journal_clear_days", "journal_match_days"])
def test_retention_must_be_whole_days(tmp_path, key):
    assert f"{key} must be a whole number of days" in refusal(tmp_path, f"{key} = 0\n")
    assert f"GATECHECK_{key.upper()} must be a whole number" in refusal(
        tmp_path / "none", **{f"GATECHECK_{key.upper()}": "1.5"})


def test_empty_host_is_refused(tmp_path):
    assert "host must be a host name or IP address" in refusal(tmp_path, 'host = ""\n')


def test_plain_pin_in_operators_is_refused_without_echoing_it(tmp_path):
    message = refusal(tmp_path, '[operators]\nagent-17 = "4711"\n')
    assert message.startswith("gatecheck.toml: operators.agent-17 must be a PIN hash")
    assert "4711" not in message


def test_bad_operator_id_is_refused(tmp_path):
    assert "is not a valid operator id" in refusal(tmp_path, f'[operators]\n"a b" = "{PIN_HASH}"\n')


def test_operators_must_be_a_table(tmp_path):
    assert "operators must be a table" in refusal(tmp_path, 'operators = "x"\n')


def test_invalid_toml_is_one_line_naming_the_file(tmp_path):
    message = refusal(tmp_path, "scopes = [air_travel\n")
    assert message.startswith("gatecheck.toml: is not valid TOML: ")


def test_file_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "gatecheck.toml").write_bytes(b"host = \"\xff\"\n")
    assert refusal(tmp_path) == "gatecheck.toml: is not UTF-8 text"


def test_unreadable_config_path_is_refused(tmp_path):
    (tmp_path / "gatecheck.toml").mkdir()
    assert "cannot be read" in refusal(tmp_path)


def test_config_error_names_source_key_and_problem(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "port = 0\n")
    assert (caught.value.source, caught.value.key) == ("gatecheck.toml", "port")


def test_loaded_operators_cannot_be_changed_behind_the_config(tmp_path):
    config = load(tmp_path, f'[operators]\nagent-17 = "{PIN_HASH}"\n')
    with pytest.raises(TypeError):
        config.operators["intruder"] = PIN_HASH  # type: ignore[index]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
@example("0\x1f")  # a control character that regex \s takes for a blank but int() refuses
@example("\u0661\u0662")  # Arabic-Indic digits: \d matches them; a port is ASCII
def test_any_environment_text_either_loads_or_is_one_clean_config_error(tmp_path_factory, text):
    tmp_path = tmp_path_factory.getbasetemp()
    for name in ["GATECHECK_SCOPES", "GATECHECK_MAX_AGE_HOURS", "GATECHECK_FAIL_CLOSED", "GATECHECK_PORT",
                 "GATECHECK_HOST", "GATECHECK_JOURNAL_CLEAR_DAYS"]:
        try:
            config = load_config(tmp_path, env={name: text})
        except ConfigError as exc:
            assert str(exc).startswith(f"environment: {name} ") and "\n" not in str(exc)
        else:
            assert config.scopes <= KNOWN_SCOPES and config.max_age > timedelta(0)
            assert 1 <= config.port <= 65535


def test_pin_hashes_readable_by_other_users_are_refused(tmp_path):
    """Short PINs fall to an offline search in minutes: the hashes must be private."""
    path = tmp_path / "gatecheck.toml"
    path.write_text(f'[operators]\nagent-1 = "{generate_password_hash("482913")}"\n')
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    assert str(caught.value).startswith("gatecheck.toml: operators holds PIN hashes")
    assert "chmod 600" in str(caught.value)
    path.chmod(0o600)
    assert "agent-1" in load_config(tmp_path, env={}).operators


# --- reporters: who may flag a passenger -------------------------------------

TWO_OPERATORS = f'[operators]\nagent-17 = "{PIN_HASH}"\nagent-23 = "{PIN_HASH}"\n'


def test_reporters_are_granted_by_operator_id(tmp_path):
    config = load(tmp_path, 'reporters = ["agent-23"]\n' + TWO_OPERATORS)
    assert config.reporters == frozenset({"agent-23"})


def test_reporters_from_the_environment_replace_the_file(tmp_path):
    config = load(tmp_path, 'reporters = ["agent-23"]\n' + TWO_OPERATORS,
                  GATECHECK_REPORTERS=" agent-17 , agent-23 ")
    assert config.reporters == frozenset({"agent-17", "agent-23"})


def test_empty_reporters_in_the_environment_revoke_every_grant(tmp_path):
    config = load(tmp_path, 'reporters = ["agent-23"]\n' + TWO_OPERATORS, GATECHECK_REPORTERS="")
    assert config.reporters == frozenset()


def test_reporter_who_is_not_an_operator_is_refused_naming_the_id(tmp_path):
    message = refusal(tmp_path, 'reporters = ["agent-17", "agent-71"]\n' + TWO_OPERATORS)
    assert message == ("gatecheck.toml: reporters names 'agent-71', "
                       "who is not a configured operator (see [operators])")


def test_reporter_from_the_environment_who_is_not_an_operator_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, TWO_OPERATORS, GATECHECK_REPORTERS="agent-17,agent-99")
    assert (caught.value.source, caught.value.key) == ("environment", "GATECHECK_REPORTERS")
    assert "'agent-99'" in str(caught.value)


def test_reporters_need_operators_even_on_a_device_without_any(tmp_path):
    assert "reporters names 'agent-17'" in refusal(tmp_path, 'reporters = ["agent-17"]\n')


@pytest.mark.parametrize("value", ["17", "[17]", '["a b"]', '[""]', "{ agent-17 = true }"])
def test_reporters_must_be_a_list_of_operator_ids(tmp_path, value):
    message = refusal(tmp_path, f"reporters = {value}\n" + TWO_OPERATORS)
    assert message.startswith("gatecheck.toml: reporters ")


def test_reporters_written_below_the_operators_table_are_refused_with_where_to_put_them(tmp_path):
    message = refusal(tmp_path, TWO_OPERATORS + 'reporters = ["agent-17"]\n')
    assert message == ("gatecheck.toml: operators.reporters looks like the setting 'reporters': "
                       "move it above the [operators] table")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["agent-17", "agent-23", "agent-71", "x", ""]), max_size=4))
def test_any_reporters_list_loads_only_when_every_id_is_an_operator(tmp_path_factory, ids):
    tmp_path = tmp_path_factory.mktemp("reporters")
    text = "reporters = [" + ", ".join(f'"{i}"' for i in ids) + "]\n" + TWO_OPERATORS
    try:
        config = load(tmp_path, text)
    except ConfigError as exc:
        assert str(exc).startswith("gatecheck.toml: reporters ") and "\n" not in str(exc)
        assert not set(ids) <= {"agent-17", "agent-23"}
    else:
        assert config.reporters == set(ids) <= set(config.operators)
