//! Small macros for code that would otherwise be written out the same way for each type.

/// A closed enum's fixed spellings: `ALL` (every variant, in the order given), `as_str` (the
/// variant's spelling) and a `Display` that prints it.
///
/// ```ignore
/// spelled!(Channel { Policy => "policy", Scorer => "scorer" });
/// ```
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A `Debug` that shows only the named fields and marks the rest as left out (`..`): for
/// types holding keys, clients or compiled programs whose contents say nothing useful or must
/// not be printed.
macro_rules! debug_showing {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use {debug_showing, spelled};
