//! RocketMQ remoting protocol codec (frames, headers, codes).
