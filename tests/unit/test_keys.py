from shared.keys import NON_SENSITIVE_KEYS, SENSITIVE_KEYS, SYNCHRONIZATION_SECRET_KEYS, is_sensitive


def test_every_graph_key_is_either_sensitive_or_not_and_never_both():
    keys = set(SYNCHRONIZATION_SECRET_KEYS)
    assert len(keys) == len(SYNCHRONIZATION_SECRET_KEYS) == 45
    assert keys == SENSITIVE_KEYS | NON_SENSITIVE_KEYS
    assert not SENSITIVE_KEYS & NON_SENSITIVE_KEYS


def test_passwords_tokens_client_secrets_codes_and_app_keys_are_sensitive():
    for key in (
        "Password",
        "SecretToken",
        "ClientSecret",
        "Oauth2ClientSecret",
        "Oauth2AuthorizationCode",
        "AppKey",
        "Oauth2AccessToken",
        "Oauth2RefreshToken",
        "ConnectionString",
    ):
        assert is_sensitive(key), key


def test_addresses_domains_user_names_client_ids_and_uris_are_not():
    for key in (
        "BaseAddress",
        "Url",
        "Domain",
        "UserName",
        "ClientIdentifier",
        "Oauth2ClientId",
        "Oauth2RedirectUri",
        "Oauth2TokenExchangeUri",
    ):
        assert not is_sensitive(key), key


def test_an_unknown_key_counts_as_sensitive():
    assert is_sensitive("SomethingGraphAddsNextYear")


def test_address_keys_are_the_urls_and_hosts_the_provisioning_service_connects_to():
    from shared.keys import ADDRESS_KEYS, is_address

    assert {
        "BaseAddress",
        "Url",
        "Server",
        "Domain",
        "InstanceName",
        "Oauth2TokenExchangeUri",
        "Oauth2AuthorizationUri",
        "Oauth2RedirectUri",
    } == ADDRESS_KEYS
    assert not ADDRESS_KEYS & SENSITIVE_KEYS  # an address may travel inline; its binding is checked instead
    assert not is_address("SomethingGraphAddsNextYear")  # unknown: not an address, but sensitive
    assert is_sensitive("SomethingGraphAddsNextYear")
