//! How a Snowflake ID's 64 bits are split: timestamp, worker and sequence fields.

use std::time::Duration;

use crate::IdConfigError;

/// The order of the two low fields under the timestamp.
///
/// # Example
///
/// ```
/// use keel_idgen::{FieldOrder, Layout};
///
/// let layout = Layout::builder()
///     .worker_bits(4)
///     .sequence_bits(8)
///     .order(FieldOrder::SequenceThenWorker)
///     .build()?;
/// // The worker sits in the lowest bits, under the sequence.
/// assert_eq!(layout.compose(0, 3, 1)?, (1 << 4) | 3);
/// assert_eq!(Layout::twitter().order(), FieldOrder::WorkerThenSequence);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FieldOrder {
    /// `timestamp | worker | sequence`, as Twitter, Discord and Instagram do.
    #[default]
    WorkerThenSequence,
    /// `timestamp | sequence | worker`, as Sonyflake does.
    SequenceThenWorker,
}

/// The layout of a Snowflake ID: field widths, epoch, time unit and field order.
///
/// Built with [`Layout::builder`], which validates it, or taken from a preset:
///
/// | preset | timestamp | worker | sequence | unit | epoch | total | lifetime |
/// |---|---|---|---|---|---|---|---|
/// | [`twitter`](Layout::twitter) | 41 | 10 | 12 | 1 ms | 2010-11-04 | 63 | 69 years |
/// | [`discord`](Layout::discord) | 42 | 10 | 12 | 1 ms | 2015-01-01 | 64 | 139 years |
/// | [`instagram`](Layout::instagram) | 41 | 13 | 10 | 1 ms | 2011-08-24 | 64 | 69 years |
/// | [`sonyflake`](Layout::sonyflake) | 39 | 16 | 8 | 10 ms | 2014-09-01 | 63 | 174 years |
/// | [`js_safe`](Layout::js_safe) | 41 | 4 | 8 | 1 ms | 2025-01-01 | 53 | 69 years |
///
/// # Example
///
/// ```
/// use keel_idgen::Layout;
/// use std::time::Duration;
///
/// let layout = Layout::builder()
///     .timestamp_bits(40)
///     .worker_bits(8)
///     .sequence_bits(15)
///     .epoch_unix_millis(1_700_000_000_000)
///     .time_unit(Duration::from_millis(2))
///     .build()?;
/// assert_eq!(layout.max_worker(), 255);
/// let id = layout.compose(1_000, 7, 42)?;
/// let parts = layout.decode(id);
/// assert_eq!((parts.ticks, parts.worker, parts.sequence), (1_000, 7, 42));
/// assert_eq!(parts.unix_millis, 1_700_000_002_000);
///
/// // Invalid layouts are refused with a message.
/// let error = Layout::builder().timestamp_bits(41).worker_bits(12).sequence_bits(12).build();
/// assert_eq!(error.unwrap_err().to_string(), "timestamp, worker and sequence bits add up to 65, more than 64");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    timestamp_bits: u8,
    worker_bits: u8,
    sequence_bits: u8,
    epoch: u64,
    unit_millis: u64,
    order: FieldOrder,
}

/// The fields of a decoded Snowflake ID.
///
/// # Example
///
/// ```
/// use keel_idgen::{Layout, Parts};
///
/// let layout = Layout::twitter();
/// let id = layout.compose(1_000, 7, 42)?;
/// let parts: Parts = layout.decode(id);
/// assert_eq!((parts.ticks, parts.worker, parts.sequence), (1_000, 7, 42));
/// assert_eq!(parts.unix_millis, layout.epoch_unix_millis() + 1_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Parts {
    /// The timestamp field: time units since the layout's epoch.
    pub ticks: u64,
    /// The timestamp as milliseconds since the Unix epoch (the start of its tick).
    pub unix_millis: u64,
    /// The worker field.
    pub worker: u64,
    /// The sequence field.
    pub sequence: u64,
}

const fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl Layout {
    /// Twitter's layout: 41 bits of milliseconds since 2010-11-04 (1288834974657), 10 worker
    /// bits, 12 sequence bits; 4,096 IDs per millisecond per worker.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let layout = Layout::twitter();
    /// assert_eq!(layout.total_bits(), 63);
    /// assert_eq!(layout.max_sequence() + 1, 4_096);
    /// // An ID from 2022 (1 641 000 000 000 ms since 1970), worker 5, sequence 9.
    /// let id = layout.compose(1_641_000_000_000 - 1_288_834_974_657, 5, 9)?;
    /// assert_eq!(layout.decode(id).unix_millis, 1_641_000_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn twitter() -> Layout {
        Layout::preset(
            41,
            10,
            12,
            1_288_834_974_657,
            1,
            FieldOrder::WorkerThenSequence,
        )
    }

    /// Discord's layout: 42 bits of milliseconds since 2015-01-01 (1420070400000), 10 worker
    /// bits (Discord's 5 worker + 5 process bits), 12 sequence bits.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// // The example ID of Discord's API reference: 2016-04-30 11:18:25.796 UTC.
    /// let parts = Layout::discord().decode(175_928_847_299_117_063);
    /// assert_eq!(parts.unix_millis, 1_462_015_105_796);
    /// assert_eq!(parts.sequence, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn discord() -> Layout {
        Layout::preset(
            42,
            10,
            12,
            1_420_070_400_000,
            1,
            FieldOrder::WorkerThenSequence,
        )
    }

    /// Instagram's layout: 41 bits of milliseconds since 2011-08-24 (1314220021721), 13 shard
    /// bits, 10 sequence bits.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let layout = Layout::instagram();
    /// assert_eq!(layout.max_worker() + 1, 8_192);
    /// // Shard 1341; the table's 5001st ID keeps 5001 % 1024 = 905 as its sequence.
    /// let id = layout.compose(1_387_263_000, 1_341, 5_001 % 1_024)?;
    /// assert_eq!(id, (1_387_263_000 << 23) | (1_341 << 10) | 905);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn instagram() -> Layout {
        Layout::preset(
            41,
            13,
            10,
            1_314_220_021_721,
            1,
            FieldOrder::WorkerThenSequence,
        )
    }

    /// Sonyflake's layout: 39 bits of 10 ms units since 2014-09-01 (1409529600000), then 8
    /// sequence bits, then 16 machine bits; 256 IDs per 10 ms per machine.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    /// use std::time::Duration;
    ///
    /// let layout = Layout::sonyflake();
    /// assert_eq!(layout.time_unit(), Duration::from_millis(10));
    /// // The sequence sits above the 16 machine bits.
    /// let id = layout.compose(5, 0xABCD, 3)?;
    /// assert_eq!(id, (5 << 24) | (3 << 16) | 0xABCD);
    /// assert_eq!(layout.decode(id).unix_millis, 1_409_529_600_050);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn sonyflake() -> Layout {
        Layout::preset(
            39,
            16,
            8,
            1_409_529_600_000,
            10,
            FieldOrder::SequenceThenWorker,
        )
    }

    /// A 53-bit layout that a JavaScript number (an IEEE double) holds exactly: 41 bits of
    /// milliseconds since 2025-01-01 (1735689600000), 4 worker bits, 8 sequence bits; 256 IDs
    /// per millisecond for each of 16 workers. Every ID is at most `Number.MAX_SAFE_INTEGER`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let layout = Layout::js_safe();
    /// let largest = layout.compose(layout.max_ticks(), layout.max_worker(), layout.max_sequence())?;
    /// // Number.MAX_SAFE_INTEGER: a double holds every js_safe ID exactly.
    /// assert_eq!(largest, (1 << 53) - 1);
    /// assert_eq!(largest as f64 as u64, largest);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn js_safe() -> Layout {
        Layout::preset(
            41,
            4,
            8,
            1_735_689_600_000,
            1,
            FieldOrder::WorkerThenSequence,
        )
    }

    const fn preset(
        timestamp_bits: u8,
        worker_bits: u8,
        sequence_bits: u8,
        epoch: u64,
        unit_millis: u64,
        order: FieldOrder,
    ) -> Layout {
        Layout {
            timestamp_bits,
            worker_bits,
            sequence_bits,
            epoch,
            unit_millis,
            order,
        }
    }

    /// A builder for a custom layout, starting from Twitter's.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// // Unchanged, the builder gives Twitter's layout.
    /// assert_eq!(Layout::builder().build()?, Layout::twitter());
    /// let layout = Layout::builder().worker_bits(5).build()?;
    /// assert_eq!(layout.max_worker(), 31);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> LayoutBuilder {
        LayoutBuilder {
            layout: Layout::twitter(),
            bad_unit: None,
        }
    }

    /// Width of the timestamp field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::discord().timestamp_bits(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn timestamp_bits(&self) -> u8 {
        self.timestamp_bits
    }

    /// Width of the worker field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::sonyflake().worker_bits(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn worker_bits(&self) -> u8 {
        self.worker_bits
    }

    /// Width of the sequence field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::instagram().sequence_bits(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn sequence_bits(&self) -> u8 {
        self.sequence_bits
    }

    /// Total width of an ID; the bits above it are always zero.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::twitter().total_bits(), 63);
    /// assert_eq!(Layout::js_safe().total_bits(), 53);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn total_bits(&self) -> u32 {
        self.timestamp_bits as u32 + self.worker_bits as u32 + self.sequence_bits as u32
    }

    /// The epoch, in milliseconds since the Unix epoch.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::discord().epoch_unix_millis(), 1_420_070_400_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn epoch_unix_millis(&self) -> u64 {
        self.epoch
    }

    /// The time unit of the timestamp field.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Layout::twitter().time_unit(), Duration::from_millis(1));
    /// assert_eq!(Layout::sonyflake().time_unit(), Duration::from_millis(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn time_unit(&self) -> Duration {
        Duration::from_millis(self.unit_millis)
    }

    pub(crate) const fn unit_millis(&self) -> u64 {
        self.unit_millis
    }

    /// The order of the worker and sequence fields.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FieldOrder, Layout};
    ///
    /// assert_eq!(Layout::sonyflake().order(), FieldOrder::SequenceThenWorker);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn order(&self) -> FieldOrder {
        self.order
    }

    /// The largest timestamp field value (in time units since the epoch).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::twitter().max_ticks(), (1 << 41) - 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max_ticks(&self) -> u64 {
        mask(self.timestamp_bits)
    }

    /// The largest worker id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::twitter().max_worker(), 1_023);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max_worker(&self) -> u64 {
        mask(self.worker_bits)
    }

    /// The largest sequence number; a worker issues `max_sequence() + 1` IDs per time unit.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// assert_eq!(Layout::twitter().max_sequence(), 4_095);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max_sequence(&self) -> u64 {
        mask(self.sequence_bits)
    }

    /// How long after the epoch the timestamp field runs out.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let years = Layout::twitter().lifetime().as_secs() / (365 * 24 * 3600);
    /// assert_eq!(years, 69);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lifetime(&self) -> Duration {
        let millis = u128::from(self.max_ticks()) * u128::from(self.unit_millis);
        Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    /// Builds an ID from its fields.
    ///
    /// # Errors
    ///
    /// [`IdConfigError::Invalid`] or [`IdConfigError::WorkerTooLarge`] if a field does not fit.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{IdConfigError, Layout};
    ///
    /// let layout = Layout::twitter();
    /// assert_eq!(layout.compose(1, 2, 3)?, (1 << 22) | (2 << 12) | 3);
    /// assert_eq!(
    ///     layout.compose(0, 1_200, 0),
    ///     Err(IdConfigError::WorkerTooLarge { worker: 1_200, bits: 10 })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compose(&self, ticks: u64, worker: u64, sequence: u64) -> Result<u64, IdConfigError> {
        if ticks > self.max_ticks() {
            return Err(IdConfigError::Invalid {
                reason: "the timestamp does not fit the timestamp field",
            });
        }
        if worker > self.max_worker() {
            return Err(IdConfigError::WorkerTooLarge {
                worker,
                bits: self.worker_bits,
            });
        }
        if sequence > self.max_sequence() {
            return Err(IdConfigError::Invalid {
                reason: "the sequence number does not fit the sequence field",
            });
        }
        Ok(self.compose_unchecked(ticks, worker, sequence))
    }

    #[inline]
    pub(crate) fn compose_unchecked(&self, ticks: u64, worker: u64, sequence: u64) -> u64 {
        let low = u32::from(self.worker_bits) + u32::from(self.sequence_bits);
        let high = ticks.checked_shl(low).unwrap_or(0);
        match self.order {
            FieldOrder::WorkerThenSequence => high | (worker << self.sequence_bits) | sequence,
            FieldOrder::SequenceThenWorker => {
                high | (sequence
                    .checked_shl(u32::from(self.worker_bits))
                    .unwrap_or(0))
                    | worker
            }
        }
    }

    /// Splits an ID into its fields. Bits above [`total_bits`](Layout::total_bits) are ignored.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let parts = Layout::twitter().decode((1 << 22) | (2 << 12) | 3);
    /// assert_eq!((parts.ticks, parts.worker, parts.sequence), (1, 2, 3));
    /// // Bits above the layout's 63 are ignored.
    /// assert_eq!(Layout::twitter().decode(1 << 63).ticks, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(&self, id: u64) -> Parts {
        let low = u32::from(self.worker_bits) + u32::from(self.sequence_bits);
        let ticks = id.checked_shr(low).unwrap_or(0) & self.max_ticks();
        let (worker, sequence) = match self.order {
            FieldOrder::WorkerThenSequence => (
                (id >> self.sequence_bits) & self.max_worker(),
                id & self.max_sequence(),
            ),
            FieldOrder::SequenceThenWorker => (
                id & self.max_worker(),
                id.checked_shr(u32::from(self.worker_bits)).unwrap_or(0) & self.max_sequence(),
            ),
        };
        Parts {
            ticks,
            unix_millis: self
                .epoch
                .saturating_add(ticks.saturating_mul(self.unit_millis)),
            worker,
            sequence,
        }
    }
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::twitter()
    }
}

/// Builds a validated [`Layout`]; see [`Layout::builder`].
///
/// # Example
///
/// ```
/// use keel_idgen::{Layout, LayoutBuilder};
///
/// let builder: LayoutBuilder = Layout::builder().timestamp_bits(42).worker_bits(9);
/// let layout = builder.build()?;
/// assert_eq!((layout.timestamp_bits(), layout.worker_bits()), (42, 9));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LayoutBuilder {
    layout: Layout,
    bad_unit: Option<Duration>,
}

impl LayoutBuilder {
    /// Width of the timestamp field (at least 1).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{IdConfigError, Layout};
    ///
    /// assert_eq!(Layout::builder().timestamp_bits(40).build()?.max_ticks(), (1 << 40) - 1);
    /// assert_eq!(
    ///     Layout::builder().timestamp_bits(0).build(),
    ///     Err(IdConfigError::EmptyField { field: "timestamp" })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timestamp_bits(mut self, bits: u8) -> LayoutBuilder {
        self.layout.timestamp_bits = bits;
        self
    }

    /// Width of the worker field (may be 0 for a single generator).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{IdConfigError, Layout};
    ///
    /// // One generator alone needs no worker field.
    /// let single = Layout::builder().worker_bits(0).build()?;
    /// assert_eq!(single.max_worker(), 0);
    /// assert_eq!(
    ///     Layout::builder().worker_bits(12).build(),
    ///     Err(IdConfigError::TooManyBits { total: 65 })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn worker_bits(mut self, bits: u8) -> LayoutBuilder {
        self.layout.worker_bits = bits;
        self
    }

    /// Width of the sequence field (at least 1).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{IdConfigError, Layout};
    ///
    /// assert_eq!(Layout::builder().sequence_bits(8).build()?.max_sequence(), 255);
    /// assert_eq!(
    ///     Layout::builder().sequence_bits(0).build(),
    ///     Err(IdConfigError::EmptyField { field: "sequence" })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sequence_bits(mut self, bits: u8) -> LayoutBuilder {
        self.layout.sequence_bits = bits;
        self
    }

    /// The epoch timestamps count from, in milliseconds since the Unix epoch.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let layout = Layout::builder().epoch_unix_millis(1_700_000_000_000).build()?;
    /// assert_eq!(layout.decode(layout.compose(5, 0, 0)?).unix_millis, 1_700_000_000_005);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn epoch_unix_millis(mut self, epoch: u64) -> LayoutBuilder {
        self.layout.epoch = epoch;
        self
    }

    /// The time unit of the timestamp field: a whole number of milliseconds, at least 1.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{IdConfigError, Layout};
    /// use std::time::Duration;
    ///
    /// let layout = Layout::builder().time_unit(Duration::from_millis(10)).build()?;
    /// assert_eq!(layout.time_unit(), Duration::from_millis(10));
    /// let half = Duration::from_micros(500);
    /// assert_eq!(
    ///     Layout::builder().time_unit(half).build(),
    ///     Err(IdConfigError::BadTimeUnit { unit: half })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn time_unit(mut self, unit: Duration) -> LayoutBuilder {
        // An invalid unit is kept as 0 and refused by `build`.
        self.layout.unit_millis = if unit.subsec_nanos().is_multiple_of(1_000_000) {
            u64::try_from(unit.as_millis()).unwrap_or(0)
        } else {
            0
        };
        self.bad_unit = (self.layout.unit_millis == 0).then_some(unit);
        self
    }

    /// The order of the worker and sequence fields.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FieldOrder, Layout};
    ///
    /// let layout = Layout::builder().order(FieldOrder::SequenceThenWorker).build()?;
    /// assert_eq!(layout.order(), FieldOrder::SequenceThenWorker);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn order(mut self, order: FieldOrder) -> LayoutBuilder {
        self.layout.order = order;
        self
    }

    /// Validates and returns the layout.
    ///
    /// # Errors
    ///
    /// An [`IdConfigError`] saying what is wrong: more than 64 bits, an empty timestamp or
    /// sequence field, or a time unit that is not a whole, positive number of milliseconds.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::Layout;
    ///
    /// let layout = Layout::builder().timestamp_bits(44).worker_bits(0).sequence_bits(20).build()?;
    /// assert_eq!(layout.total_bits(), 64);
    /// let error = Layout::builder().timestamp_bits(45).worker_bits(0).sequence_bits(20).build();
    /// assert_eq!(
    ///     error.unwrap_err().to_string(),
    ///     "timestamp, worker and sequence bits add up to 65, more than 64"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Layout, IdConfigError> {
        let layout = self.layout;
        if layout.timestamp_bits == 0 {
            return Err(IdConfigError::EmptyField { field: "timestamp" });
        }
        if layout.sequence_bits == 0 {
            return Err(IdConfigError::EmptyField { field: "sequence" });
        }
        let total = layout.total_bits();
        if total > 64 {
            return Err(IdConfigError::TooManyBits { total });
        }
        if let Some(unit) = self.bad_unit {
            return Err(IdConfigError::BadTimeUnit { unit });
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_their_documented_widths() {
        assert_eq!(Layout::twitter().total_bits(), 63);
        assert_eq!(Layout::discord().total_bits(), 64);
        assert_eq!(Layout::instagram().total_bits(), 64);
        assert_eq!(Layout::sonyflake().total_bits(), 63);
        assert_eq!(Layout::js_safe().total_bits(), 53);
        assert_eq!(Layout::twitter().max_sequence() + 1, 4096);
        let years = |layout: Layout| layout.lifetime().as_secs() / (365 * 24 * 3600);
        assert_eq!(years(Layout::twitter()), 69);
        assert_eq!(years(Layout::sonyflake()), 174);
    }

    #[test]
    fn js_safe_ids_stay_below_2_pow_53() {
        let layout = Layout::js_safe();
        let largest = layout
            .compose(
                layout.max_ticks(),
                layout.max_worker(),
                layout.max_sequence(),
            )
            .unwrap_or(u64::MAX);
        assert_eq!(largest, (1u64 << 53) - 1);
    }

    #[test]
    fn discords_documented_example_decodes() {
        // From Discord's API reference: 2016-04-30 11:18:25.796 UTC, worker 1, process 0,
        // increment 7 (worker and process share the 10-bit worker field).
        let parts = Layout::discord().decode(175_928_847_299_117_063);
        assert_eq!(parts.unix_millis, 1_462_015_105_796);
        assert_eq!(parts.worker, 1 << 5);
        assert_eq!(parts.sequence, 7);
    }

    #[test]
    fn sonyflake_puts_the_sequence_above_the_machine() {
        let layout = Layout::sonyflake();
        let id = layout.compose(5, 0xABCD, 3).unwrap_or(0);
        assert_eq!(id, (5 << 24) | (3 << 16) | 0xABCD);
        assert_eq!(layout.decode(id).worker, 0xABCD);
        assert_eq!(layout.decode(id).sequence, 3);
        assert_eq!(layout.decode(id).unix_millis, 1_409_529_600_050);
    }

    #[test]
    fn builder_refuses_bad_layouts() {
        let error = |builder: LayoutBuilder| builder.build().unwrap_err().to_string();
        assert_eq!(
            error(Layout::builder().sequence_bits(0)),
            "the sequence field needs at least 1 bit"
        );
        assert_eq!(
            error(Layout::builder().timestamp_bits(0)),
            "the timestamp field needs at least 1 bit"
        );
        assert_eq!(
            error(Layout::builder().time_unit(Duration::from_micros(1500))),
            "time unit 1.5ms is not a whole, positive number of milliseconds"
        );
        assert_eq!(
            error(Layout::builder().time_unit(Duration::ZERO)),
            "time unit 0ns is not a whole, positive number of milliseconds"
        );
        assert!(
            Layout::builder()
                .timestamp_bits(44)
                .worker_bits(0)
                .sequence_bits(20)
                .build()
                .is_ok()
        );
    }

    #[test]
    fn compose_refuses_fields_that_do_not_fit() {
        let layout = Layout::twitter();
        assert_eq!(
            layout.compose(0, 1200, 0),
            Err(IdConfigError::WorkerTooLarge {
                worker: 1200,
                bits: 10
            })
        );
        assert!(layout.compose(0, 0, 4096).is_err());
        assert!(layout.compose(1 << 41, 0, 0).is_err());
    }
}
