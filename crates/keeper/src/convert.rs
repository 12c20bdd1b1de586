//! Conversions between the wire types of `keeper.proto` and the model's types.

use strom_proto::keeper as pb;

use crate::error::KeeperError;
use crate::types::{CreateMode, Op, OpResult, Stat};

pub fn stat_to_pb(s: &Stat) -> pb::Stat {
    pb::Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

pub fn stat_from_pb(s: Option<&pb::Stat>) -> Stat {
    let Some(s) = s else { return Stat::default() };
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

fn mode(v: i32) -> Result<CreateMode, KeeperError> {
    CreateMode::from_proto(v).ok_or_else(|| KeeperError::BadArguments(format!("unknown create mode {v}")))
}

pub fn create_from_pb(c: pb::Create) -> Result<Op, KeeperError> {
    Ok(Op::Create { path: c.path, data: c.data, mode: mode(c.mode)? })
}

pub fn op_from_pb(op: pb::MultiOp) -> Result<Op, KeeperError> {
    use pb::multi_op::Op as M;
    match op.op {
        Some(M::Create(c)) => create_from_pb(c),
        Some(M::Delete(d)) => Ok(Op::Delete { path: d.path, version: d.version }),
        Some(M::SetData(s)) => Ok(Op::SetData { path: s.path, data: s.data, version: s.version }),
        Some(M::Check(c)) => Ok(Op::Check { path: c.path, version: c.version }),
        None => Err(KeeperError::BadArguments("multi op without an operation".into())),
    }
}

pub fn op_to_pb(op: &Op) -> pb::MultiOp {
    use pb::multi_op::Op as M;
    let op = match op {
        Op::Create { path, data, mode } => {
            M::Create(pb::Create { path: path.clone(), data: data.clone(), mode: mode.to_proto() })
        }
        Op::Delete { path, version } => M::Delete(pb::Delete { path: path.clone(), version: *version }),
        Op::SetData { path, data, version } => {
            M::SetData(pb::SetData { path: path.clone(), data: data.clone(), version: *version })
        }
        Op::Check { path, version } => M::Check(pb::Check { path: path.clone(), version: *version }),
    };
    pb::MultiOp { op: Some(op) }
}

pub fn op_result_to_pb(r: &OpResult) -> pb::multi_result::Entry {
    use pb::multi_result::entry::Result as R;
    let result = match r {
        OpResult::Create { path, stat } => {
            R::Create(pb::CreateResult { path: path.clone(), stat: Some(stat_to_pb(stat)) })
        }
        OpResult::SetData { stat } => R::Stat(pb::StatResult { stat: Some(stat_to_pb(stat)) }),
        OpResult::Delete | OpResult::Check => R::Empty(pb::Empty {}),
    };
    pb::multi_result::Entry { err: 0, result: Some(result) }
}
