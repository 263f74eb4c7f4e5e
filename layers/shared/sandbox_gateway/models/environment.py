"""Environments are data: a name mapped to a provider, a template or image, a language and limits."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Provider(StrEnum):
    E2B = "e2b"
    DOCKER = "docker"


class Language(StrEnum):
    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"
    BASH = "bash"


# What callers may write for a language; the value is what providers receive.
LANGUAGE_ALIASES: dict[str, Language] = {
    "python": Language.PYTHON,
    "python3": Language.PYTHON,
    "py": Language.PYTHON,
    "javascript": Language.JAVASCRIPT,
    "js": Language.JAVASCRIPT,
    "node": Language.JAVASCRIPT,
    "nodejs": Language.JAVASCRIPT,
    "typescript": Language.TYPESCRIPT,
    "ts": Language.TYPESCRIPT,
    "bash": Language.BASH,
    "sh": Language.BASH,
    "shell": Language.BASH,
}


class Environment(BaseModel):
    """One entry of the catalogue. Operators add custom ones through CUSTOM_ENVIRONMENTS (JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    provider: Provider
    template: str = Field(min_length=1, max_length=256, description="E2B template id or Docker image")
    default_language: Language
    languages: tuple[Language, ...]
    description: str = ""
    allow_internet_access: bool = False
    max_session_seconds: int | None = Field(default=None, ge=60)
    cpu_count: float | None = Field(default=None, gt=0, le=16)
    memory_mb: int | None = Field(default=None, ge=64, le=65_536)

    @model_validator(mode="after")
    def _default_language_is_offered(self) -> Environment:
        if self.default_language not in self.languages:
            raise ValueError(f"environment {self.name}: default_language must be one of its languages")
        return self


# Every built-in environment offers the four languages; the name picks the default one.
# TypeScript runs in a JavaScript kernel (transpiled cell by cell), as in E2B's template.
_LANGUAGES = (Language.PYTHON, Language.JAVASCRIPT, Language.TYPESCRIPT, Language.BASH)
_FLAVOURS = (
    ("python", Language.PYTHON, "Python 3 (Jupyter kernel)"),
    ("node", Language.JAVASCRIPT, "Node.js (JavaScript kernel)"),
    ("bash", Language.BASH, "Bash (persistent shell)"),
)
E2B_CODE_INTERPRETER_TEMPLATE = "code-interpreter-v1"
# Local development only: the Docker provider runs untrusted code on the developer's own host.
DOCKER_SANDBOX_IMAGE = "sandbox-gateway/sandbox:latest"
_PROVIDERS = (
    (Provider.E2B, E2B_CODE_INTERPRETER_TEMPLATE, "in E2B's code-interpreter template"),
    (Provider.DOCKER, DOCKER_SANDBOX_IMAGE, "in a local Docker container (local development only)"),
)

BUILT_IN_ENVIRONMENTS: tuple[Environment, ...] = tuple(
    Environment(
        name=f"{provider.value}-{suffix}",
        provider=provider,
        template=template,
        default_language=language,
        languages=_LANGUAGES,
        description=f"{label} {where}",
    )
    for provider, template, where in _PROVIDERS
    for suffix, language, label in _FLAVOURS
)
