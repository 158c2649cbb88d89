//! The models manifest: which wheel carries which model file, with pinned
//! versions, sizes and SHA-256 sums.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ModelsError;

/// The manifest compiled into this crate (`models.toml`).
const EMBEDDED: &str = include_str!("../models.toml");

/// The manifest schema this build reads.
const SCHEMA: u32 = 1;

/// The models voxgate needs and where each comes from.
///
/// Built only by parsing, which checks that names are safe file names, that
/// digests are well-formed and that wheel names agree with package and version,
/// so the rest of the crate can trust its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    models: Vec<Model>,
}

impl Manifest {
    /// The manifest committed with this crate.
    pub fn embedded() -> Manifest {
        // A parse failure here is a bug in the committed models.toml, not a
        // runtime condition; `embedded_manifest_parses` keeps it from shipping.
        Manifest::parse(EMBEDDED).expect("the embedded models.toml parses (tested)")
    }

    /// Parses a manifest in the format of `models.toml`.
    pub fn parse(text: &str) -> Result<Manifest, ModelsError> {
        let raw: RawManifest = toml::from_str(text).map_err(ManifestError::Syntax)?;
        if raw.schema != SCHEMA {
            return Err(ManifestError::Schema { found: raw.schema }.into());
        }
        let mut models: Vec<Model> = Vec::with_capacity(raw.models.len());
        for raw_model in raw.models {
            let model = Model::from_raw(raw_model)?;
            if models.iter().any(|m| m.name == model.name) {
                return Err(ManifestError::DuplicateModel(model.name).into());
            }
            models.push(model);
        }
        Ok(Manifest { models })
    }

    /// The models, in manifest order (the order `fetch` works in).
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The model called `name`, if the manifest lists it.
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The sum of the sizes of every model's files.
    pub fn size(&self) -> u64 {
        self.models.iter().map(Model::size).sum()
    }
}

/// One model: a PyPI wheel and the files taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    name: String,
    package: String,
    version: String,
    license: String,
    wheel: String,
    wheel_sha256: Sha256Digest,
    members: Vec<Member>,
}

impl Model {
    /// The model's name, which is also its directory in the models directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PyPI package that carries the model.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// The exact package version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The licence string from the package's METADATA.
    pub fn license(&self) -> &str {
        &self.license
    }

    /// The wheel's file name.
    pub fn wheel(&self) -> &str {
        &self.wheel
    }

    /// The wheel's SHA-256.
    pub fn wheel_sha256(&self) -> Sha256Digest {
        self.wheel_sha256
    }

    /// The files extracted from the wheel.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The sum of the sizes of the model's files.
    pub fn size(&self) -> u64 {
        self.members.iter().map(|m| m.size).sum()
    }

    fn from_raw(raw: RawModel) -> Result<Model, ManifestError> {
        let invalid = |problem: String| ManifestError::Invalid {
            model: raw.name.clone(),
            problem,
        };
        if !is_plain_file_name(&raw.name) {
            return Err(invalid(format!(
                "the name {:?} is not a plain file name (letters, digits, `.`, `_`, `-`)",
                raw.name
            )));
        }
        if raw.package.is_empty() || raw.version.is_empty() {
            return Err(invalid("package and version must not be empty".into()));
        }
        check_wheel_name(&raw.wheel, &raw.package, &raw.version).map_err(&invalid)?;
        if raw.members.is_empty() {
            return Err(invalid("no members to extract".into()));
        }
        let mut members: Vec<Member> = Vec::with_capacity(raw.members.len());
        for member in raw.members {
            if !is_plain_file_name(&member.file) {
                return Err(invalid(format!(
                    "the member file {:?} is not a plain file name",
                    member.file
                )));
            }
            if member.path.is_empty() {
                return Err(invalid(format!("the member {} has no path", member.file)));
            }
            if members.iter().any(|m| m.file == member.file) {
                return Err(invalid(format!("the file {} is listed twice", member.file)));
            }
            members.push(Member {
                path: member.path,
                file: member.file,
                sha256: member.sha256,
                size: member.size,
            });
        }
        Ok(Model {
            name: raw.name,
            package: raw.package,
            version: raw.version,
            license: raw.license,
            wheel: raw.wheel,
            wheel_sha256: raw.wheel_sha256,
            members,
        })
    }
}

/// One file extracted from a wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    path: String,
    file: String,
    sha256: Sha256Digest,
    size: u64,
}

impl Member {
    /// The path inside the wheel.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's name in the model's directory.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The file's SHA-256.
    pub fn sha256(&self) -> Sha256Digest {
        self.sha256
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// A SHA-256 digest; displayed and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// Wraps a finished hasher.
    pub(crate) fn from_hasher(hasher: Sha256) -> Sha256Digest {
        Sha256Digest(hasher.finalize().into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(ParseDigestError(s.to_owned()));
        }
        let mut digest = [0u8; 32];
        for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or_else(|| ParseDigestError(s.to_owned()))?;
            let low = hex_value(pair[1]).ok_or_else(|| ParseDigestError(s.to_owned()))?;
            *out = high << 4 | low;
        }
        Ok(Sha256Digest(digest))
    }
}

/// Only lowercase hex is accepted, so that a digest has one spelling and the
/// manifest can be compared with `sha256sum` output by eye.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A string that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (64 lowercase hex digits)")]
pub struct ParseDigestError(String);

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not TOML, or a field is missing, unknown or of the wrong type.
    #[error("models manifest: {0}")]
    Syntax(toml::de::Error),
    /// A schema this build does not know.
    #[error("models manifest: schema {found} is not supported (this build reads schema {SCHEMA})")]
    Schema {
        /// The schema the manifest declares.
        found: u32,
    },
    /// Two models share a name.
    #[error("models manifest: model {0} is listed twice")]
    DuplicateModel(String),
    /// A model's entry is inconsistent.
    #[error("models manifest: model {model}: {problem}")]
    Invalid {
        /// The model's name as written.
        model: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A name that is safe to join onto a directory: no separators, no `..`, not
/// hidden (hidden names are this crate's own stamp and work files).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A wheel name is `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
/// (PEP 427); checking it against package and version catches a bump that
/// changed one but not the other.
fn check_wheel_name(wheel: &str, package: &str, version: &str) -> Result<(), String> {
    let stem = wheel
        .strip_suffix(".whl")
        .filter(|_| is_plain_file_name(wheel))
        .ok_or_else(|| format!("{wheel:?} is not a wheel file name"))?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&parts.len()) {
        return Err(format!("{wheel:?} is not a wheel file name"));
    }
    let normalise = |s: &str| s.to_ascii_lowercase().replace(['-', '.'], "_");
    if normalise(parts[0]) != normalise(package) || parts[1] != version {
        return Err(format!(
            "the wheel {wheel} is not package {package} version {version}"
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: u32,
    #[serde(rename = "model", default)]
    models: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    package: String,
    version: String,
    license: String,
    wheel: String,
    wheel_sha256: Sha256Digest,
    #[serde(rename = "member", default)]
    members: Vec<RawMember>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    path: String,
    file: String,
    sha256: Sha256Digest,
    size: u64,
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL_NAMES: [&str; 6] = [
        "silero-vad",
        "smart-turn",
        "whisper-tiny-en",
        "smollm2-135m",
        "piper-joe-medium",
        "onnxruntime",
    ];

    #[test]
    fn embedded_manifest_parses() {
        let manifest = Manifest::parse(EMBEDDED);
        assert!(manifest.is_ok(), "{manifest:?}");
    }

    #[test]
    fn embedded_manifest_names_all_six_models() {
        let manifest = Manifest::embedded();
        let names: Vec<&str> = manifest.models().iter().map(Model::name).collect();
        assert_eq!(names, MODEL_NAMES);
        for model in manifest.models() {
            assert!(
                !model.license().is_empty(),
                "{} has no licence",
                model.name()
            );
            assert!(model.size() > 0);
        }
        let whisper = manifest.model("whisper-tiny-en").map(|m| {
            m.members()
                .iter()
                .map(|f| f.file().to_owned())
                .collect::<Vec<_>>()
        });
        assert_eq!(
            whisper,
            Some(
                [
                    "model.bin",
                    "config.json",
                    "tokenizer.json",
                    "vocabulary.txt"
                ]
                .map(String::from)
                .to_vec()
            )
        );
    }

    #[test]
    fn digest_round_trips_and_rejects_bad_hex() {
        let hex = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3";
        let digest: Result<Sha256Digest, _> = hex.parse();
        assert_eq!(digest.map(|d| d.to_string()).as_deref(), Ok(hex));
        assert!("1A153A22".parse::<Sha256Digest>().is_err());
        assert!(hex.to_uppercase().parse::<Sha256Digest>().is_err());
        assert_eq!(
            Sha256Digest::of(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn one_model(name: &str, wheel: &str, file: &str) -> String {
        format!(
            r#"
schema = 1
[[model]]
name = "{name}"
package = "some-pkg"
version = "1.0"
license = "MIT"
wheel = "{wheel}"
wheel_sha256 = "{digest}"
[[model.member]]
path = "some_pkg/x.bin"
file = "{file}"
sha256 = "{digest}"
size = 0
"#,
            digest = Sha256Digest::of(b"")
        )
    }

    #[test]
    fn rejects_unsafe_names_and_mismatched_wheels() {
        let good = one_model("m", "some_pkg-1.0-py3-none-any.whl", "x.bin");
        assert!(Manifest::parse(&good).is_ok());
        for bad in [
            one_model("../m", "some_pkg-1.0-py3-none-any.whl", "x.bin"),
            one_model("m", "some_pkg-1.0-py3-none-any.whl", "../x.bin"),
            one_model("m", "some_pkg-1.0-py3-none-any.whl", ".x.bin"),
            one_model("m", "some_pkg-2.0-py3-none-any.whl", "x.bin"),
            one_model("m", "other-1.0-py3-none-any.whl", "x.bin"),
            one_model("m", "some_pkg-1.0.tar.gz", "x.bin"),
        ] {
            assert!(
                matches!(
                    Manifest::parse(&bad),
                    Err(ModelsError::Manifest(ManifestError::Invalid { .. }))
                ),
                "accepted: {bad}"
            );
        }
        let wrong_schema = good.replace("schema = 1", "schema = 2");
        assert!(matches!(
            Manifest::parse(&wrong_schema),
            Err(ModelsError::Manifest(ManifestError::Schema { found: 2 }))
        ));
        let unknown_field = good.replace("size = 0", "size = 0\nmode = 1");
        assert!(matches!(
            Manifest::parse(&unknown_field),
            Err(ModelsError::Manifest(ManifestError::Syntax(_)))
        ));
    }
}
