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


_CODE_INTERPRETER_TEMPLATE = "code-interpreter-v1"
_CODE_INTERPRETER_LANGUAGES = (Language.PYTHON, Language.JAVASCRIPT, Language.BASH)

BUILT_IN_ENVIRONMENTS: tuple[Environment, ...] = (
    Environment(
        name="e2b-python",
        provider=Provider.E2B,
        template=_CODE_INTERPRETER_TEMPLATE,
        default_language=Language.PYTHON,
        languages=_CODE_INTERPRETER_LANGUAGES,
        description="Python 3 (Jupyter kernel) in E2B's code-interpreter template",
    ),
    Environment(
        name="e2b-node",
        provider=Provider.E2B,
        template=_CODE_INTERPRETER_TEMPLATE,
        default_language=Language.JAVASCRIPT,
        languages=_CODE_INTERPRETER_LANGUAGES,
        description="Node.js (JavaScript kernel) in E2B's code-interpreter template",
    ),
    Environment(
        name="e2b-bash",
        provider=Provider.E2B,
        template=_CODE_INTERPRETER_TEMPLATE,
        default_language=Language.BASH,
        languages=_CODE_INTERPRETER_LANGUAGES,
        description="Bash (persistent shell kernel) in E2B's code-interpreter template",
    ),
)

# Local development only (the Docker provider runs untrusted code on the developer's own host).
DOCKER_SANDBOX_IMAGE = "sandbox-gateway/sandbox:latest"
BUILT_IN_ENVIRONMENTS += tuple(
    Environment(
        name=f"docker-{suffix}",
        provider=Provider.DOCKER,
        template=DOCKER_SANDBOX_IMAGE,
        default_language=language,
        languages=_CODE_INTERPRETER_LANGUAGES,
        description=f"{label} in a local Docker container (local development only)",
    )
    for suffix, language, label in (
        ("python", Language.PYTHON, "Python 3"),
        ("node", Language.JAVASCRIPT, "Node.js"),
        ("bash", Language.BASH, "Bash"),
    )
)
