"""The secret-binding rules of shared/policy.py, pure: tags, prefixes, the matching rule and its edges."""

from types import MappingProxyType

import pytest

from shared.errors import InvalidRequest, PolicyRefused
from shared.policy import (
    Bound,
    Endpoint,
    binding_problem,
    check_address_shape,
    check_bindings,
    endpoint_matches,
    parse_endpoints,
    parse_targets,
)
from shared.references import SecretReference
from shared.request import Target
from shared.settings import Settings

SP = "0b9e8b8a-8f7e-4f6c-9d0a-3d3c6f6f1a11"
OTHER = "5d3c8a2e-1f4b-4c6d-8e9f-0a1b2c3d4e5f"
PREFIX = Endpoint(host="scim.example.com", port=443, path="/v2")


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ("https://scim.example.com/v2", True),
        ("https://scim.example.com/v2/", True),
        ("https://scim.example.com/v2/Users", True),
        ("https://SCIM.Example.COM/v2", True),  # host case
        ("https://scim.example.com./v2", True),  # a trailing dot
        ("https://scim.example.com:443/v2", True),  # the default port written out
        ("HTTPS://scim.example.com/v2", True),  # scheme case
        ("https://scim.example.com/v20", False),  # not at a segment boundary
        ("https://scim.example.com/v", False),
        ("https://scim.example.com/", False),
        ("https://scim.example.com", False),
        ("https://scim.example.com/V2", False),  # paths are case-sensitive
        ("http://scim.example.com/v2", False),  # not https
        ("https://scim.example.com.evil.net/v2", False),  # host suffix trick
        ("https://evil.net/scim.example.com/v2", False),
        ("https://evilscim.example.com/v2", False),
        ("https://scim.example.com:8443/v2", False),  # another port
        ("https://scim.example.com/v2/../admin", False),  # dot segments
        ("https://scim.example.com/v2/%2e%2e/admin", False),  # encoded dot segments
        ("https://scim.example.com/v2%2f..%2fadmin", False),
        ("https://scim.example.com\\@evil.net/v2", False),
        ("https://user:pass@scim.example.com/v2", False),  # user information
        ("https://scim.example.com/v2?x=1", False),
        ("https://scim.example.com/v2#x", False),
        ("scim.example.com", True),  # a bare host (Server, Domain)
        ("SCIM.example.com.", True),
        ("evil.net", False),
        ("scim.example.com.evil.net", False),
        ("ldap://scim.example.com/v2", False),
        ("", False),
        (" https://scim.example.com/v2", False),  # Python's URL parser would drop the space; a refusal does not
        ("https://scim.exam\nple.com/v2", False),
        ("https://scim.example.com/v2\t", False),
    ],
)
def test_an_address_matches_a_prefix_only_by_scheme_host_port_and_whole_path_segments(value, matches):
    assert endpoint_matches(value, PREFIX) is matches


def test_a_prefix_without_a_path_allows_the_whole_host_and_an_explicit_port_is_kept():
    [whole] = parse_endpoints("https://scim.example.com/")
    assert whole == Endpoint("scim.example.com", 443, "")
    assert endpoint_matches("https://scim.example.com/anything/at/all", whole)
    [ported] = parse_endpoints("https://Scim.Example.com.:8443/v2/")
    assert ported == Endpoint("scim.example.com", 8443, "/v2")
    assert endpoint_matches("https://scim.example.com:8443/v2/Users", ported)
    assert not endpoint_matches("https://scim.example.com/v2/Users", ported)


@pytest.mark.parametrize(
    "text",
    [
        "https://a.example.com/v2 https://b.example.com",
        "https://a.example.com/v2,https://b.example.com",
        "https://a.example.com/v2 , https://b.example.com ",
        "  https://a.example.com/v2\thttps://b.example.com",
    ],
)
def test_endpoint_prefixes_are_separated_by_spaces_or_commas(text):
    assert [str(e) for e in parse_endpoints(text)] == ["https://a.example.com/v2", "https://b.example.com"]


@pytest.mark.parametrize(
    "text",
    [
        "http://scim.example.com",
        "scim.example.com",
        "https://user@scim.example.com",
        "https://scim.example.com/v2?x=1",
        "https://scim.example.com/v2#f",
        "https://scim.example.com:99999",
        "https://scim.example.com/../x",
        "https://ok.example.com ftp://bad",
    ],
)
def test_a_malformed_endpoints_tag_is_said_to_be_malformed(text):
    problem = parse_endpoints(text)
    assert isinstance(problem, str)
    assert "not a list of https://host[:port][/path] prefixes" in problem


def test_no_endpoints_tag_and_an_empty_one_differ():
    assert parse_endpoints(None) is None
    assert parse_endpoints(" , ") == "its tag provisioning-endpoints is empty"


@pytest.mark.parametrize(
    "text",
    [
        f"{SP},{OTHER}",
        f"{SP} {OTHER}",
        f"{SP.upper()} ,  {OTHER}",
        f"\t{SP}\n{OTHER.upper()},",
    ],
)
def test_targets_are_guids_in_any_case_separated_by_commas_and_or_spaces(text):
    assert parse_targets(text) == {SP, OTHER}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (None, "it has no tag provisioning-targets"),
        ("", "its tag provisioning-targets is empty"),
        (" ,, ", "its tag provisioning-targets is empty"),
        (f"{SP};{OTHER}", "is not a list of object ids"),
        ("everyone", "is not a list of object ids"),
        (f"{SP} *", "is not a list of object ids"),
    ],
)
def test_a_missing_empty_or_malformed_targets_tag_says_which(text, said):
    problem = parse_targets(text)
    assert isinstance(problem, str)
    assert said in problem


def bound(tags, name="scim-token", version="v1"):
    ref = SecretReference("https://contoso-kv.vault.azure.net", name)
    return Bound(key="SecretToken", reference=ref, version=version, tags=MappingProxyType(tags))


TAGS = {"provisioning-targets": SP, "provisioning-endpoints": "https://scim.example.com/v2"}
SENT = [("BaseAddress", "https://scim.example.com/v2"), ("SecretToken", "value")]


def test_a_secret_bound_to_the_target_and_endpoint_may_go():
    assert binding_problem(Target("servicePrincipal", SP), SENT, bound(TAGS)) is None


def test_a_target_the_tag_does_not_list_is_refused_in_the_contract_words():
    problem = binding_problem(Target("servicePrincipal", OTHER), SENT, bound(TAGS))
    assert problem is not None
    assert (problem.code, problem.http_status) == ("secretNotBound", 403)
    assert problem.message.startswith(
        f"secret 'scim-token' (version v1) in contoso-kv.vault.azure.net is not bound to servicePrincipal {OTHER}: "
        "its tag provisioning-targets does not list it"
    )
    assert "python -m shared bind" in problem.message  # says how its owner binds it


def test_an_address_the_endpoints_do_not_allow_is_refused_naming_the_key_never_the_value():
    sent = [("Url", "https://evil.example.net/collect"), ("SecretToken", "value")]
    problem = binding_problem(Target("servicePrincipal", SP), sent, bound(TAGS))
    assert problem is not None
    assert problem.code == "endpointNotBound"
    assert "'Url'" in problem.message
    assert "evil" not in problem.message


def test_a_secret_without_an_endpoints_tag_travels_with_no_address_at_all():
    tags = {"provisioning-targets": SP}
    target = Target("servicePrincipal", SP)
    assert binding_problem(target, [("SecretToken", "v"), ("UserName", "u")], bound(tags)) is None
    problem = binding_problem(target, SENT, bound(tags))
    assert problem is not None
    assert problem.code == "endpointNotBound"
    assert "has no tag provisioning-endpoints" in problem.message


def test_off_mode_checks_nothing_and_required_checks_every_distinct_secret():
    target = Target("servicePrincipal", SP)
    untagged = bound({}, name="other")
    check_bindings(target, SENT, [bound(TAGS), untagged], Settings(secret_binding="off"))
    with pytest.raises(PolicyRefused) as refused:
        check_bindings(target, SENT, [bound(TAGS), untagged], Settings())
    assert "secret 'other'" in str(refused.value)
    assert "it has no tag provisioning-targets" in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [
        "https://user:hunter2@scim.example.com/v2",
        "https://hunter2@scim.example.com/v2",
        "https://scim.example.com/v2?api_key=x",
        "https://scim.example.com/v2#frag",
        "hunter2@scim.example.com",
    ],
)
def test_an_address_with_user_information_a_query_or_a_fragment_is_invalid(value):
    with pytest.raises(InvalidRequest) as invalid:
        check_address_shape("BaseAddress", value)
    assert "'BaseAddress'" in invalid.value.message
    assert "hunter2" not in invalid.value.message
    assert "api_key" not in invalid.value.message


@pytest.mark.parametrize(
    "value",
    [
        "https://scim.example.com/v2/..;/admin",  # matrix parameters (Tomcat, Spring)
        "https://scim.example.com/v2/%252e%252e/admin",  # double encoding
        "https://scim.example.com/v2/%u002e%u002e/admin",  # IIS
        "https://scim.example.com/v2/\uff0e\uff0e/admin",  # full-width dots
        "https://scim.example.com/v2/x%3",  # a % that is no escape
        "https://scim.example.com:0/v2",  # port 0 is not the default port
        "https://[scim.example.com/v2",  # a URL Python cannot parse: no match, never an error
    ],
)
def test_path_and_port_tricks_a_server_could_undo_never_match(value):
    assert endpoint_matches(value, PREFIX) is False


def test_a_url_key_given_a_bare_host_does_not_escape_the_prefixs_path():
    from shared.policy import BARE_HOST_KEYS

    assert {"Server", "Domain", "InstanceName"} == BARE_HOST_KEYS
    assert endpoint_matches("scim.example.com", PREFIX, bare=True)
    assert not endpoint_matches("scim.example.com", PREFIX, bare=False)
    assert not endpoint_matches("scim.example.com:8443", PREFIX)  # a bare host's port is the prefix's too
    assert endpoint_matches("scim.example.com:443", PREFIX)
    target = Target("servicePrincipal", SP)
    problem = binding_problem(target, [("BaseAddress", "scim.example.com"), ("SecretToken", "v")], bound(TAGS))
    assert problem is not None
    assert problem.code == "endpointNotBound"
    assert binding_problem(target, [("Server", "scim.example.com"), ("SecretToken", "v")], bound(TAGS)) is None


def test_an_address_python_cannot_parse_is_a_400_not_a_500():
    with pytest.raises(InvalidRequest) as invalid:
        check_address_shape("BaseAddress", "https://[x")
    assert "'BaseAddress'" in invalid.value.message
