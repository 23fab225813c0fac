"""The plugin contracts are enforced: every kind's base is an ABC whose abstract methods a
plugin must implement, and the registry refuses a class that does not subclass its kind's base."""

import importlib.metadata as md
from abc import ABCMeta
from dataclasses import dataclass

import pytest

import toolkit
from toolkit import registry
from toolkit.contracts import BASES
from toolkit.errors import PluginError


def test_every_kind_names_an_abstract_base() -> None:
    assert set(BASES) == set(registry.KINDS)
    for kind, base in BASES.items():
        assert isinstance(base, ABCMeta) and base.__abstractmethods__, kind


def test_first_party_plugins_implement_their_whole_contract() -> None:
    for kind in registry.KINDS:
        for ep in md.entry_points(group=registry.KINDS[kind]):
            if ep.value.startswith("plugins."):
                cls = registry.load(kind, ep.name)
                assert issubclass(cls, BASES[kind]), (kind, ep.name)
                assert not cls.__abstractmethods__, (kind, ep.name, sorted(cls.__abstractmethods__))


def _stub(base: type, leave_out: str | None) -> type:
    """A subclass of ``base`` implementing every abstract method but ``leave_out``."""
    body = {name: (lambda self, *a, **k: None) for name in base.__abstractmethods__ if name != leave_out}
    return type(f"Stub{base.__name__}", (base,), body)


@pytest.mark.parametrize("kind", list(BASES))
def test_a_missing_abstract_method_cannot_be_instantiated(kind: str) -> None:
    base = BASES[kind]
    _stub(base, None)()  # complete: builds
    for name in sorted(base.__abstractmethods__):
        with pytest.raises(TypeError, match=name):
            _stub(base, name)()


class NotATokenizer:
    """Has everything a plugin declares, but not the ``SpeechTokenizer`` base."""

    api_version = toolkit.API_VERSION

    @dataclass
    class Params:
        levels: int = 4

    def __init__(self, params: Params) -> None:
        self.params = params


def test_registering_a_class_of_the_wrong_base_is_one_line() -> None:
    with pytest.raises(PluginError) as err:
        toolkit.register("tokenizer", "not_a_tokenizer", NotATokenizer)
    assert str(err.value) == ("tokenizer plugin 'not_a_tokenizer' (in-process) is not a subclass "
                              "of toolkit.contracts.SpeechTokenizer")
    assert "not_a_tokenizer" not in registry.names("tokenizer")


def test_an_entry_point_of_the_wrong_base_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that registers a trunk class as a tokenizer: refused when loaded."""
    ep = md.EntryPoint("trunk_as_tok", "plugins.llama:LlamaTrunk", registry.KINDS["tokenizer"])
    monkeypatch.setattr(registry, "_entry_points", lambda kind: {ep.name: ep})
    with pytest.raises(PluginError) as err:
        registry.load("tokenizer", "trunk_as_tok")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("tokenizer plugin 'trunk_as_tok' (?) is not a subclass of "
                                     "toolkit.contracts.SpeechTokenizer")
