//! The demo's two teams: who a webhook is for, and the route and sink each is reached by.

/// Who a webhook is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Team {
    Carers,
    Senior,
}

impl Team {
    /// The `[[route]]` name.
    pub fn route(self) -> &'static str {
        match self {
            Team::Carers => "carers",
            Team::Senior => "senior",
        }
    }
    /// The `[[sink]]` name.
    pub fn sink(self) -> &'static str {
        match self {
            Team::Carers => "carers-phones",
            Team::Senior => "senior-phone",
        }
    }
    pub fn phones(self) -> &'static str {
        match self {
            Team::Carers => "carers' phones",
            Team::Senior => "senior's phone",
        }
    }
}
