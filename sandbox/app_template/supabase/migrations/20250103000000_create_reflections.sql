-- Reflections: morning intentions and evening reviews, one of each per day.
create table if not exists public.reflections (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  date date not null,
  type text not null check (type in ('morning', 'midday', 'evening')),
  intention text,
  lesson text,
  gratitude text,
  created_at timestamptz not null default now(),
  unique (user_id, date, type)
);
