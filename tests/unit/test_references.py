import pytest

from shared.errors import InvalidRequest, PolicyRefused
from shared.references import SecretReference, parse_reference
from shared.settings import Settings

SETTINGS = Settings.from_env(
    {
        "KEY_VAULT_URI": "https://contoso-kv.vault.azure.net/",
        "KEY_VAULT_ALLOWED_HOSTS": "contoso-kv.vault.azure.net, other-kv.vault.azure.net:443, 127.0.0.1:8443",
    }
)
VERSION = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/scim-token)",
            SecretReference("https://contoso-kv.vault.azure.net", "scim-token"),
        ),
        (
            f"@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/scim-token/{VERSION})",
            SecretReference("https://contoso-kv.vault.azure.net", "scim-token", VERSION),
        ),
        (
            "@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/scim-token/)",
            SecretReference("https://contoso-kv.vault.azure.net", "scim-token"),
        ),
        (
            "@Microsoft.KeyVault(VaultName=other-kv;SecretName=scim-token)",
            SecretReference("https://other-kv.vault.azure.net", "scim-token"),
        ),
        (
            f"@Microsoft.KeyVault(VaultName=Contoso-KV; SecretName=scim-token; SecretVersion={VERSION})",
            SecretReference("https://contoso-kv.vault.azure.net", "scim-token", VERSION),
        ),
        (
            "https://CONTOSO-kv.vault.azure.net/secrets/scim-token",
            SecretReference("https://contoso-kv.vault.azure.net", "scim-token"),
        ),
        (
            "https://other-kv.vault.azure.net:443/secrets/scim-token",
            SecretReference("https://other-kv.vault.azure.net:443", "scim-token"),
        ),
        ("https://127.0.0.1:8443/secrets/a/" + VERSION, SecretReference("https://127.0.0.1:8443", "a", VERSION)),
        ("scim-token", SecretReference("https://contoso-kv.vault.azure.net", "scim-token")),
        (f"scim-token/{VERSION}", SecretReference("https://contoso-kv.vault.azure.net", "scim-token", VERSION)),
    ],
)
def test_all_four_reference_forms_parse(ref, expected):
    assert parse_reference(ref, SETTINGS) == expected


def test_vault_name_references_use_the_dns_suffix_of_the_cloud():
    settings = Settings.from_env(
        {"KEY_VAULT_DNS_SUFFIX": "vault.azure.cn", "KEY_VAULT_ALLOWED_HOSTS": "kv1.vault.azure.cn"}
    )
    ref = parse_reference("@Microsoft.KeyVault(VaultName=kv1;SecretName=s)", settings)
    assert ref.vault_url == "https://kv1.vault.azure.cn"


@pytest.mark.parametrize(
    "ref",
    [
        "https://evil.example.com/secrets/scim-token",
        "@Microsoft.KeyVault(SecretUri=https://evil.vault.azure.net/secrets/x)",
        "@Microsoft.KeyVault(VaultName=evil;SecretName=x)",
        "https://contoso-kv.vault.azure.net.evil.com/secrets/x",
        "https://127.0.0.1:9999/secrets/x",
    ],
)
def test_a_vault_host_not_allowed_is_refused_before_any_network_call(ref):
    with pytest.raises(PolicyRefused) as caught:
        parse_reference(ref, SETTINGS, key="SecretToken")
    assert "not in KEY_VAULT_ALLOWED_HOSTS" in caught.value.message
    assert caught.value.code == "vaultHostNotAllowed"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("http://contoso-kv.vault.azure.net/secrets/x", "must use https"),
        ("https://contoso-kv.vault.azure.net/keys/x", "https://<vault-host>/secrets/<name>"),
        ("https://contoso-kv.vault.azure.net/secrets/x?api-version=1", "https://<vault-host>/secrets/<name>"),
        ("https://user:pw@contoso-kv.vault.azure.net/secrets/x", "https://<vault-host>/secrets/<name>"),
        ("@Microsoft.KeyVault(SecretName=x)", "takes SecretUri"),
        ("@Microsoft.KeyVault(VaultName=contoso-kv;SecretName=x;Extra=1)", "takes SecretUri"),
        ("@Microsoft.KeyVault(VaultName=contoso-kv;VaultName=x;SecretName=x)", "names VaultName twice"),
        ("@Microsoft.KeyVault(VaultName=1bad;SecretName=x)", "not a valid Key Vault name"),
        ("@Microsoft.KeyVault(SecretUri)", "needs Name=Value pairs"),
        ("bad_name!", "secret name must be"),
        ("a/b/c", "not a Key Vault reference of a known form"),
        ("name/ver$ion", "secret version must be"),
    ],
)
def test_a_reference_of_no_known_form_is_refused_naming_the_credential(ref, expected):
    with pytest.raises(InvalidRequest) as caught:
        parse_reference(ref, SETTINGS, key="SecretToken")
    assert expected in caught.value.message
    assert "'SecretToken'" in caught.value.message


def test_short_references_need_key_vault_uri():
    with pytest.raises(InvalidRequest, match="needs the KEY_VAULT_URI app setting"):
        parse_reference("scim-token", Settings.from_env({}))
