"""The provider registry (the one owner of 'Docker only locally') and request timings."""

from __future__ import annotations

import time

import pytest
from sandbox_gateway import timing, wiring
from sandbox_gateway.models.environment import Provider
from sandbox_gateway.models.errors import ProviderNotAllowed, ProviderUnavailable
from sandbox_gateway.providers import ProviderRegistry

from tests.support.fakes import FakeSandboxProvider


def test_a_deployed_stack_offers_e2b_only() -> None:
    registry = ProviderRegistry.for_deployment({}, local_mode=False)
    assert registry.enabled == {Provider.E2B}
    with pytest.raises(ProviderNotAllowed, match="only available in local development"):
        registry.get(Provider.DOCKER)


def test_local_development_offers_docker_too() -> None:
    fake = FakeSandboxProvider()
    registry = ProviderRegistry.for_deployment({Provider.DOCKER: lambda: fake}, local_mode=True)
    assert registry.enabled == {Provider.E2B, Provider.DOCKER}
    assert registry.get(Provider.DOCKER) is fake


def test_an_enabled_provider_without_a_factory_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable):
        ProviderRegistry({}, [Provider.E2B]).get(Provider.E2B)


def test_wiring_refuses_docker_outside_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_MODE", raising=False)
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    wiring.reset()
    try:
        with pytest.raises(ProviderNotAllowed):
            wiring.provider_for(Provider.DOCKER)
        assert [env.provider for env in wiring.catalogue().available()] == [Provider.E2B] * 3
    finally:
        wiring.reset()


def test_provider_calls_count_as_sandbox_time() -> None:
    class Slow:
        def kill(self, sandbox_id: str) -> None:
            time.sleep(0.02)

    timed = timing.Timed(Slow(), timing.SANDBOX)
    with timing.request_timings() as spent:
        timed.kill("sbx")
    assert spent.milliseconds(timing.SANDBOX) >= 20
    assert spent.milliseconds(timing.STORE) == 0


def test_outside_a_request_measuring_is_a_no_op() -> None:
    with timing.measure(timing.STORE):
        pass
    assert timing.current_timings() is None


def test_the_header_names_every_measure_even_when_nothing_was_spent() -> None:
    with timing.request_timings() as spent:
        spent.add(timing.STORE, 0.0042)
        header = spent.header()
    names = [part.split(";")[0] for part in header.split(", ")]
    assert names == ["total", "store", "sandbox"]
    assert "store;dur=4.2" in header and "sandbox;dur=0.0" in header
