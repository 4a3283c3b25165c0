//! Batch actions: run over a selection of contacts, with a form of their own.

use std::marker::PhantomData;

use crate::bindings::batch_action as world;
use crate::types::*;

pub use world::exports::magpie::plugin::batch::{
    ActionForm, BatchReport, InputProblem, ItemFailure, RunContext,
};

/// A plugin of the `batch-action` kind.
pub trait BatchAction {
    fn describe() -> PluginInfo;

    /// The label, icon and form the admin sees before running the action.
    fn form() -> ActionForm;

    /// Checks the form input before the run starts. The default accepts anything the
    /// form's own rules (required, select options) accept.
    fn validate(input: &[Pair]) -> std::result::Result<(), Vec<InputProblem>> {
        let _ = input;
        Ok(())
    }

    /// Processes one batch of contacts.
    fn run(context: RunContext, contact_ids: Vec<i64>) -> Result<BatchReport>;
}

impl ActionForm {
    pub fn new(label: impl Into<String>, icon: impl Into<String>) -> ActionForm {
        ActionForm {
            label: label.into(),
            icon: icon.into(),
            description: String::new(),
            fields: Vec::new(),
            batch_size: 100,
            destructive: false,
        }
    }
    pub fn description(mut self, d: impl Into<String>) -> ActionForm {
        self.description = d.into();
        self
    }
    pub fn field(mut self, s: Setting) -> ActionForm {
        self.fields.push(s);
        self
    }
}

impl RunContext {
    /// A form input.
    pub fn input(&self, key: &str) -> Option<&str> {
        find_pair(&self.input, key)
    }
}

impl BatchReport {
    pub fn new() -> BatchReport {
        BatchReport {
            succeeded: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            message: None,
        }
    }
    pub fn fail(&mut self, contact_id: i64, message: impl Into<String>, retryable: bool) {
        self.failed.push(ItemFailure {
            contact_id,
            message: message.into(),
            retryable,
        });
    }
}

impl Default for BatchReport {
    fn default() -> Self {
        BatchReport::new()
    }
}

#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: BatchAction + 'static> world::Guest for Export<T> {
    fn describe() -> PluginInfo {
        PluginInfo {
            kind: PluginKind::BatchAction,
            ..T::describe()
        }
    }
}

impl<T: BatchAction + 'static> world::exports::magpie::plugin::batch::Guest for Export<T> {
    fn form() -> ActionForm {
        T::form()
    }
    fn validate(input: Vec<Pair>) -> std::result::Result<(), Vec<InputProblem>> {
        T::validate(&input)
    }
    fn run(context: RunContext, contact_ids: Vec<i64>) -> Result<BatchReport> {
        T::run(context, contact_ids)
    }
}
