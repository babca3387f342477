//! The type-erased node instances a task runs, and the adapters from the typed API to them.

use crate::error::ProcessError;
use crate::processor::{Emit, NodeContext, Processor, ProcessorContext, Value};
use crate::record::Record;

/// One node instance of one task.
pub(crate) trait Node: Send {
    /// After restore, before the first record.
    fn init(&mut self, _ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        Ok(())
    }
    /// One record.
    fn process(&mut self, record: Record<Value>, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError>;
    /// On processing time.
    fn punctuate(&mut self, _ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        Ok(())
    }
    /// When the task closes.
    fn close(&mut self) {}
}

/// Unbox a value as the type the node was built for. A mismatch is a bug in the builder, not bad input.
pub(crate) fn downcast<V: 'static>(r: Record<Value>) -> Result<Record<V>, ProcessError> {
    let Record { key, value, time } = r;
    match value.downcast::<V>() {
        Ok(v) => Ok(Record { key, value: *v, time }),
        Err(_) => Err(ProcessError::Fatal(format!("node received a value that is not a {}", std::any::type_name::<V>()))),
    }
}

pub(crate) fn emit<V: Send + 'static>(out: &mut Vec<Emit>, child: Option<usize>, r: Record<V>) {
    let Record { key, value, time } = r;
    out.push(Emit { child, record: Record { key, value: Box::new(value) as Value, time } });
}

type StatelessFn = Box<dyn FnMut(Record<Value>, &mut NodeContext<'_>) -> Result<(), ProcessError> + Send>;

/// A stateless node: a closure.
pub(crate) struct StatelessNode(StatelessFn);

impl StatelessNode {
    pub(crate) fn new(f: impl FnMut(Record<Value>, &mut NodeContext<'_>) -> Result<(), ProcessError> + Send + 'static) -> Self {
        StatelessNode(Box::new(f))
    }
    /// Passes every record on unchanged (sources, branch outputs).
    pub(crate) fn forward_all() -> Self {
        Self::new(|r, ctx| {
            ctx.emitted.push(Emit { child: None, record: r });
            Ok(())
        })
    }
}

impl Node for StatelessNode {
    fn process(&mut self, record: Record<Value>, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        (self.0)(record, ctx)
    }
}

/// A user [`Processor`] as a node.
pub(crate) struct ProcessorNode<P>(pub(crate) P);

impl<P: Processor> Node for ProcessorNode<P> {
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        self.0.init(&mut ProcessorContext { node: ctx, _out: std::marker::PhantomData })
    }
    fn process(&mut self, record: Record<Value>, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        let record = downcast::<P::In>(record)?;
        self.0.process(record, &mut ProcessorContext { node: ctx, _out: std::marker::PhantomData })
    }
    fn punctuate(&mut self, ctx: &mut NodeContext<'_>) -> Result<(), ProcessError> {
        self.0.punctuate(&mut ProcessorContext { node: ctx, _out: std::marker::PhantomData })
    }
    fn close(&mut self) {
        self.0.close()
    }
}
