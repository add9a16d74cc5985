//! Where log lines go: journald under systemd (`JOURNAL_STREAM` set), otherwise readable text on
//! a terminal or JSON lines on request. `RUST_LOG` overrides the default filter.
//!
//! One event is one line, whatever a device sent: values from outside (payload fields, dead
//! letter details, peer text) reach messages and fields, so every message and field value is
//! escaped here, once, for every path into the log: newlines, carriage returns, tabs and every
//! other control character become `\n`, `\r`, `\t`, `\u{..}` ([`escape`]). The text format does
//! it in its field formatter, journald through [`Escaped`], which rebuilds each event with
//! escaped values before the journald layer sees it. JSON lines need nothing: serde_json already
//! escapes every control character in a string. Backslashes are left as they are, so text that
//! is already escaped (a `?debug` value) is not escaped twice.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Log line format chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. Call once, first thing.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},rumqttc=warn")));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && format == LogFormat::Text
        && let Ok(journald) = tracing_journald::layer()
    {
        // Only journald: stdout is also captured by journald, so both would double every line.
        let _ = registry
            .with(Escaped(journald.with_syslog_identifier("atgw".into())))
            .try_init();
        return;
    }
    match format {
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr),
                )
                .try_init();
        }
        LogFormat::Text => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .fmt_fields(EscapedFields)
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
                )
                .try_init();
        }
    }
}

/// `text` with every control character (and the Unicode line and paragraph separators)
/// written as an escape, so it cannot start a new line or drive a terminal.
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The text format's fields: the message, then `name=value` pairs, every value escaped. Like
/// tracing-subscriber's default, except for the escaping.
struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = TextFields {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct TextFields<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for TextFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // Where a `log` crate record came from: the formatter shows it as the target.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let text = format!("{value:?}");
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = match name {
            "message" => write!(self.writer, "{sep}{}", escape(&text)),
            name => write!(
                self.writer,
                "{sep}{}={}",
                name.trim_start_matches("r#"),
                escape(&text)
            ),
        };
    }
}

/// A layer that hands `L` each event with its message and field values escaped ([`escape`]).
/// Span fields pass unchanged: atgw opens no spans of its own.
pub struct Escaped<L>(pub L);

/// Every field of one event, as escaped text, in the order of its metadata.
struct Collect {
    values: Vec<Option<String>>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, escape(value).into_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, escape(&format!("{value:?}")).into_owned());
    }
}

impl Collect {
    fn put(&mut self, field: &Field, text: String) {
        if let Some(slot) = self.values.get_mut(field.index()) {
            *slot = Some(text);
        }
    }
}

impl<S: Subscriber, L: Layer<S>> Layer<S> for Escaped<L> {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let fields = meta.fields();
        let mut collect = Collect {
            values: vec![None; fields.len()],
        };
        event.record(&mut collect);
        let shown: Vec<Option<tracing::field::DisplayValue<&str>>> = collect
            .values
            .iter()
            .map(|v| v.as_deref().map(tracing::field::display))
            .collect();
        let values: Vec<Option<&dyn tracing::Value>> = shown
            .iter()
            .map(|v| v.as_ref().map(|d| d as &dyn tracing::Value))
            .collect();
        let set = fields.value_set_all(&values);
        let escaped = if event.is_contextual() {
            Event::new(meta, &set)
        } else {
            Event::new_child_of(event.parent().cloned(), meta, &set)
        };
        self.0.on_event(&escaped, ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &tracing::span::Id, new: &tracing::span::Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            escape("off\n2026 ERROR\r\t\u{1b}[2K\u{2028}x"),
            "off\\n2026 ERROR\\r\\t\\u{1b}[2K\\u{2028}x"
        );
        assert_eq!(escape(r"already \n escaped"), r"already \n escaped");
    }

    /// What a layer behind [`Escaped`] is given: each field as `name=value`.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Visit for Recorded {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if let Ok(mut v) = self.0.lock() {
                v.push(format!("{}={value:?}", field.name()));
            }
        }
    }

    impl<S: Subscriber> Layer<S> for Recorded {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            event.record(&mut self.clone());
        }
    }

    #[test]
    fn the_layer_behind_escaped_sees_no_control_character_in_any_field() {
        let seen = Recorded::default();
        let subscriber = tracing_subscriber::registry().with(Escaped(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let detail = "off\n2026-12-02T06:00:00Z ERROR forged";
            tracing::warn!(topic = %"a\rb", reason = "x\ny", "dead-lettered: {detail}");
        });
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "message=dead-lettered: off\\n2026-12-02T06:00:00Z ERROR forged",
                "topic=a\\rb",
                "reason=x\\ny",
            ]
        );
    }
}
